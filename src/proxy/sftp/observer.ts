import { Transform } from 'node:stream';
import { draft, type AuditDraft } from '../../audit/events.js';
import type { ChannelControl, ChannelFilter, ChannelInfo, ChannelObserver } from '../../shared/channel.js';
import type { Logger } from '../../shared/logger.js';
import type { Store } from '../../store/types.js';
import { ChannelContents, type FileContentDeps } from '../../recorder/filecontent.js';
import { isSftpServerCommand, plainArgv } from '../transfer.js';
import { RsyncReader, rsyncCommand, type RsyncCommand } from './rsync.js';
import { ScpParser, scpCommand, type ScpFile } from './scp.js';
import { SftpTracker, type SftpEvent } from './tracker.js';
import { Framer, WireError } from './wire.js';

/**
 * The file audit of one transfer channel: SFTP (the subsystem or the sftp-server command) and
 * legacy scp are followed file by file; each file operation becomes an audit event and each file
 * that moved a row in the files table. rsync's file list is read from the sender's stream
 * (rsync.ts: names and sizes, no hashes; `unparsed` with the reason when it cannot be), and the
 * channel row keeps the command, counts and stream hashes as for every channel. A malformed or over-limit stream ends the channel with `transfer.malformed`, and
 * the parser stops. With `recording.fileContent.maxBytes` > 0 each whole file's content is stored
 * beside the recording and marked in it (recorder/filecontent.ts).
 *
 * Under the `sftp-read` right the SFTP parser stands in the byte path (a ChannelFilter): refused
 * requests never reach the target and gatehouse answers them. Otherwise it only observes, on the
 * relay's one pass over the bytes.
 */
export interface FileAuditDeps {
  store: Store;
  log: Logger;
  /** Content capture (off when absent or maxBytes is 0). */
  fileContent?: FileContentDeps | null;
  /** Writes a marker line into the channel's recording (null: the channel is not recorded). */
  mark?: ((text: string) => void) | null;
}

/** `rsync --server [--sender] …`, or null when the command is not rsync's server. */
function rsyncOf(command: string | null): RsyncCommand | null {
  const argv = command === null ? null : plainArgv(command);
  return argv ? rsyncCommand(argv) : null;
}

/** rsync.file events per channel; past it the summary says how many entries were not listed. */
const MAX_RSYNC_EVENTS = 10_000;

/**
 * rsync: the file list read from the sender's stream (rsync.ts), one `rsync.file` event and files
 * row per entry that is not a directory, and one `rsync.transfer` at the end saying whether the
 * list was read whole (`read`) or not (`unparsed`, with the reason). The reader only observes:
 * a stream it cannot read is still relayed, and its channel row keeps counts and stream hashes.
 */
function rsyncAudit(deps: FileAuditDeps, info: ChannelInfo, ctl: ChannelControl, cmd: RsyncCommand): ChannelObserver[] {
  const base = { session: info.sessionId, channel: info.channel, user: info.user, host: info.host, direction: cmd.direction };
  let chain: Promise<unknown> = Promise.resolve();
  const write = (fn: () => Promise<unknown>) => {
    chain = chain.then(fn).catch((err: unknown) => deps.log.error({ err, session: info.sessionId }, 'file audit write failed'));
    ctl.track(chain);
  };
  let listed = 0;
  let skipped = 0;
  const reader = new RsyncReader(cmd, (e) => {
    if (e.type === 'dir') return;
    if (listed >= MAX_RSYNC_EVENTS) { skipped++; return; }
    listed++;
    write(() => deps.store.audit.append(draft('rsync.file', 'system', { ...base, name: e.name, type: e.type, size: e.size, root: cmd.paths.join(' ') })));
    if (e.type === 'file') write(() => deps.store.files.add({ sessionId: info.sessionId, channel: info.channel, protocol: 'rsync', direction: cmd.direction, path: e.name, size: e.size, sha256: 'unavailable' }));
  });
  return [{
    onInput: (d) => reader.client(d),
    onOutput: (d, s) => { if (s === 'stdout') reader.server(d); },
    onEnd: () => {
      const r = reader.result();
      write(() => deps.store.audit.append(draft('rsync.transfer', 'system', {
        ...base, fileList: r.state, entries: r.entries, ...(skipped ? { notListed: skipped } : {}), ...(r.reason ? { reason: r.reason } : {}),
      })));
    },
  }];
}

/** File events waiting for the store, per channel, before the channel is ended. */
const MAX_WAITING_WRITES = 10_000;
/** Requests gatehouse refuses under sftp-read, per channel, before the channel is ended. */
const MAX_REFUSED = 1_000;

export function fileAudit(deps: FileAuditDeps, info: ChannelInfo, ctl: ChannelControl): ChannelObserver[] {
  if (info.action !== 'sftp' && info.action !== 'sftp-read') return [];
  const sftp = info.kind === 'subsystem' || isSftpServerCommand(info.command);
  const scp = sftp ? null : scpCommand(info.command);
  const rsync = sftp || scp ? null : rsyncOf(info.command);
  if (rsync) return rsyncAudit(deps, info, ctl, rsync);
  if (!sftp && !scp) return [];
  const contents = deps.fileContent && deps.fileContent.maxBytes > 0
    ? new ChannelContents(deps.fileContent, info.sessionId, info.channel, deps.mark ?? null) : null;
  const capture = contents ? () => contents.capture() : null;

  const base = { session: info.sessionId, channel: info.channel, user: info.user, host: info.host };
  let chain: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  // Events are written in the order they happened, each tracked so the session waits for them. A
  // client can make events faster than the store writes them (tiny requests, never reading its
  // replies): past MAX_WAITING_WRITES the channel ends instead of memory growing.
  const write = (fn: () => Promise<unknown>, force = false) => {
    if (!force && waiting >= MAX_WAITING_WRITES) return malformed(sftpOrScp, new WireError(`more than ${MAX_WAITING_WRITES} file events waiting to be written`));
    waiting++;
    chain = chain.then(fn).catch((err: unknown) => deps.log.error({ err, session: info.sessionId }, 'file audit write failed')).finally(() => { waiting--; });
    ctl.track(chain);
  };
  const sftpOrScp = sftp ? 'sftp' : 'scp';
  const audit = (ev: AuditDraft) => write(() => deps.store.audit.append(ev));
  let dead = false;
  let discard = () => {};
  const malformed = (protocol: string, err: unknown) => {
    if (dead) return;
    dead = true;
    discard();
    const error = err instanceof WireError ? err.message : 'internal error';
    if (!(err instanceof WireError)) deps.log.error({ err, session: info.sessionId }, 'file audit failed');
    write(() => deps.store.audit.append(draft('transfer.malformed', 'system', { session: info.sessionId, channel: info.channel, user: info.user, protocol, error })), true);
    ctl.abort(`gatehouse: the ${protocol} stream was ended: ${error}`);
  };

  if (scp) {
    const parser = new ScpParser(scp, (f: ScpFile) => {
      audit(draft('scp.file', 'system', { ...base, direction: f.direction, path: f.path, name: f.name, mode: f.mode, size: f.size, bytes: f.bytes, sha256: f.sha256, ...(f.content !== undefined ? { content: f.content } : {}) }));
      write(() => deps.store.files.add({ sessionId: info.sessionId, channel: info.channel, protocol: 'scp', direction: f.direction, path: f.path, size: f.bytes, sha256: f.sha256 }));
    }, capture);
    discard = () => parser.discard();
    const feed = (d: Buffer) => { if (!dead) try { parser.push(d); } catch (err) { malformed('scp', err); } };
    return [{
      ...(scp.direction === 'upload' ? { onInput: feed } : { onOutput: (d: Buffer, s: 'stdout' | 'stderr') => { if (s === 'stdout') feed(d); } }),
      onEnd: () => { if (!dead) parser.end(); },
    }];
  }

  let refused = 0;
  const tracker = new SftpTracker((ev) => sftpEvent(ev), info.action === 'sftp-read', capture);
  discard = () => tracker.discard();
  function sftpEvent(ev: SftpEvent): void {
    switch (ev.type) {
      case 'open': return audit(draft('sftp.open', 'system', { ...base, path: ev.path, flags: ev.flags, ...(ev.error ? { error: ev.error } : {}) }));
      case 'close': {
        const { type: _t, ...rest } = ev;
        audit(draft('sftp.close', 'system', { ...base, ...rest }));
        if (ev.direction === 'none') return;
        const size = ev.direction === 'upload' ? ev.bytesWritten : ev.bytesRead;
        return write(() => deps.store.files.add({ sessionId: info.sessionId, channel: info.channel, protocol: 'sftp', direction: ev.direction, path: ev.path, size, sha256: ev.sha256 }));
      }
      case 'rename': return audit(draft('sftp.rename', 'system', { ...base, path: ev.path, to: ev.to, ok: ev.ok, ...(ev.error ? { error: ev.error } : {}) }));
      case 'symlink': return audit(draft('sftp.symlink', 'system', { ...base, path: ev.path, target: ev.target, ok: ev.ok, ...(ev.error ? { error: ev.error } : {}) }));
      case 'denied':
        // Each refusal is audited and answered by gatehouse; a client that only sends refused
        // requests would grow the log and the reply queue without end.
        if (++refused > MAX_REFUSED) return malformed('sftp', new WireError(`more than ${MAX_REFUSED} refused requests`));
        return audit(draft('sftp.denied', 'system', { ...base, path: ev.path, op: ev.op }));
      default: return audit(draft(`sftp.${ev.type}`, 'system', { ...base, path: ev.path, ok: ev.ok, ...(ev.error ? { error: ev.error } : {}) }));
    }
  }
  const fromOperator = new Framer();
  const fromTarget = new Framer();
  const onEnd = () => { if (!dead) tracker.end(); };

  if (info.action === 'sftp') {
    return [{
      onInput: (d) => {
        if (dead) return;
        try { for (const p of fromOperator.push(d)) tracker.client(p); } catch (err) { malformed('sftp', err); }
      },
      onOutput: (d, s) => {
        if (dead || s !== 'stdout') return;
        try { for (const p of fromTarget.push(d)) tracker.server(p); } catch (err) { malformed('sftp', err); }
      },
      onEnd,
    }];
  }
  ctl.filter(readOnlyFilter(tracker, fromOperator, fromTarget, () => dead, (err) => malformed('sftp', err)));
  return [{ onEnd }];
}

const lengthOf = (p: Buffer) => { const b = Buffer.alloc(4); b.writeUInt32BE(p.length, 0); return b; };

/**
 * sftp-read: whole packets only pass, in both directions. A refused request's STATUS reply joins
 * the target's replies at a packet boundary, so it never splits one of them.
 */
function readOnlyFilter(tracker: SftpTracker, fromOperator: Framer, fromTarget: Framer, dead: () => boolean, fail: (err: unknown) => void): ChannelFilter {
  const replies: Buffer[] = [];
  const flush = () => { if (fromTarget.atBoundary) while (replies.length) toOperator.push(replies.shift()); };
  const toTarget = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (dead()) return cb();
      try {
        for (const p of fromOperator.push(chunk)) {
          const v = tracker.client(p);
          if (v.forward) { this.push(lengthOf(p)); this.push(p); } else replies.push(v.reply);
        }
        flush();
      } catch (err) { fail(err); }
      cb();
    },
  });
  const toOperator = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (dead()) return cb();
      try {
        for (const p of fromTarget.push(chunk)) {
          tracker.server(p);
          this.push(lengthOf(p));
          this.push(p);
        }
        flush();
      } catch (err) { fail(err); }
      cb();
    },
  });
  return { toTarget, toOperator };
}
