import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { draft } from '../audit/events.js';
import type { Config } from '../config/schema.js';
import type { ChannelControl, ChannelInfo, ChannelObserver, ExitInfo, RecordingObserver } from '../shared/channel.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Offload } from '../shared/offload.js';
import type { Store } from '../store/types.js';
import { CastEncoder } from './cast.js';
import { CastFile, recordingPath } from './file.js';
import type { LiveHub } from './livehub.js';
import { createLocalStorage } from './storage/local.js';
import type { RecordingStorage } from './storage/types.js';
import { indexRecording, LiveIndex, LiveIndexer } from './textindex.js';

/**
 * The recorder is one more observer of the relay: it never parses SSH itself. Policy, written down
 * because it is the point of the product: recording fails CLOSED. If a recording cannot be opened
 * the channel is refused; if a write fails mid-session the channel is ended; both are audited as
 * recording.failed. Only `recording.required: false` lets a session continue unrecorded, and that
 * is audited too.
 */
export interface RecorderDeps {
  config: Config;
  store: Store;
  /** High-resolution clock for event times. */
  clock: Clock;
  log: Logger;
  /** The directory live recordings are written to (with S3 storage: the spool, storage.spool). */
  root: string;
  /** Where closed recordings are kept; default: the local storage on root. */
  storage?: RecordingStorage;
  hostKey: Buffer;
  /** Live view subscribers (the web UI). */
  hub?: LiveHub;
  /** The app's writing and hashing thread. */
  offload: Offload;
}

export class RecordingUnavailable extends Error {}

export function signer(hostKey: Buffer): (hash: string) => string {
  const parsed = ssh2.utils.parseKey(hostKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error('the host key cannot sign recordings');
  return (hash) => (key.sign(Buffer.from(hash, 'hex')) as Buffer).toString('base64');
}

function freeBytes(dir: string): number {
  const st = fs.statfsSync(dir);
  return Number(st.bavail) * Number(st.bsize);
}

/** The recorder, and how a server waits at shutdown for recordings still closing. */
export type RecorderFactory = ((info: ChannelInfo, ctl: ChannelControl) => Promise<ChannelObserver[]>) & {
  /** Resolves when every recording opened so far has closed (row, audit, index), or after timeoutMs. */
  idle(timeoutMs: number): Promise<void>;
};

export function createRecorderFactory(deps: RecorderDeps): RecorderFactory {
  // Live recordings are written where the storage spools them (the same directory unless one is given).
  deps = { ...deps, root: deps.storage?.spool ?? deps.root, storage: deps.storage ?? createLocalStorage(deps.root) };
  const sign = signer(deps.hostKey);
  const indexer = new LiveIndexer(deps.config.recording.liveIndexEvery);
  // Recordings opened and not yet closed: a shutdown waits for them before it stops the writing thread.
  const open = new Set<object>();
  const factory = async (ctx: ChannelInfo, ctl: ChannelControl) => {
    try {
      const token = {};
      open.add(token);
      const watched: ChannelControl = { ...ctl, track: (p) => { ctl.track(p); const done = () => { open.delete(token); }; void p.then(done, done); } };
      try {
        return [await openChannelRecorder(ctx, watched, deps, sign, indexer)];
      } catch (err) {
        open.delete(token);
        throw err;
      }
    } catch (err) {
      const required = deps.config.recording.required;
      const message = err instanceof Error ? err.message : String(err);
      await deps.store.audit.append(draft('recording.failed', 'system', {
        session: ctx.sessionId, channel: ctx.channel, user: ctx.user, error: message, required, phase: 'open',
      }));
      deps.log.error({ session: ctx.sessionId, channel: ctx.channel, err: message, required }, 'recording cannot be opened');
      if (required) throw new RecordingUnavailable(`session refused: the recording cannot be written (${message})`);
      return [];
    }
  };
  return Object.assign(factory, {
    async idle(timeoutMs: number) {
      const until = Date.now() + timeoutMs;
      while (open.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    },
  });
}

async function openChannelRecorder(ctx: ChannelInfo, ctl: ChannelControl, deps: RecorderDeps, sign: (h: string) => string, indexer: LiveIndexer): Promise<RecordingObserver> {
  const { config, store, clock } = deps;
  const storage = deps.storage!;
  fs.mkdirSync(deps.root, { recursive: true, mode: 0o700 });
  if (freeBytes(deps.root) < config.recording.minFreeSpace) {
    throw new Error(`free space in ${deps.root} is under recording.minFreeSpace`);
  }
  const start = clock.now();
  const file = recordingPath(deps.root, ctx.sessionId, ctx.channel, start);
  const rel = path.relative(deps.root, file);
  const transfer = ctx.action === 'sftp' || ctx.action === 'sftp-read';
  let failed = false;
  const cast = CastFile.create(deps.offload, file, (err) => {
    if (failed) return;
    failed = true;
    void store.audit.append(draft('recording.failed', 'system', {
      session: ctx.sessionId, channel: ctx.channel, user: ctx.user, error: err.message, required: config.recording.required, phase: 'write',
    }));
    deps.log.error({ session: ctx.sessionId, channel: ctx.channel, err: err.message }, 'recording write failed');
    if (config.recording.required) ctl.abort('session ended: the recording cannot be written');
  });
  await store.recordings.open({ sessionId: ctx.sessionId, channel: ctx.channel, path: rel, kind: transfer ? 'transfer' : 'terminal' });

  const enc = new CastEncoder(start, () => clock.now(), ctx.pty === null);
  const user = ctx.user;
  const hub = deps.hub;
  // Every line goes to the file and, while the channel is live, to the live view.
  const emit = hub ? (lines: Buffer) => { cast.append(lines); hub.publish(ctx.sessionId, ctx.channel, lines); } : (lines: Buffer) => cast.append(lines);
  const header = enc.header({
    width: ctx.pty?.cols || 80, height: ctx.pty?.rows || 24, timestamp: Math.floor(start / 1000),
    title: `${user} → ${ctx.login}@${ctx.host}`, ...(ctx.command !== null ? { command: ctx.command } : {}),
    term: ctx.pty?.term || 'xterm',
  });
  cast.append(header);
  hub?.open(ctx.sessionId, ctx.channel, header);
  if (ctx.command !== null) emit(enc.marker(ctx.command));
  if (transfer) emit(enc.marker('file transfer: the data stream is not recorded; byte counts and SHA-256 are on the channel row'));

  // An exec without a pty is recorded up to execOutputLimit; a pty session is recorded whole.
  const limit = ctx.pty === null ? config.recording.execOutputLimit : Infinity;
  const recordInput = config.recording.input && !transfer;
  let recorded = 0;
  let cut = false;
  const counts = { in: 0, out: 0 };
  const live = transfer ? null : new LiveIndex(store, ctx.sessionId, ctx.channel, (err) => deps.log.warn({ err, session: ctx.sessionId }, 'indexing live output failed'));
  if (live) indexer.add(live);

  return {
    onOutput(d) {
      counts.out += d.length;
      if (transfer || cut) return;
      if (recorded + d.length > limit) {
        cut = true;
        emit(enc.output(d.subarray(0, limit - recorded)));
        emit(enc.finish(false));
        emit(enc.marker(`recording stops here: recording.execOutputLimit (${limit} bytes) reached; the channel row keeps byte counts and SHA-256 of the full streams`));
        return;
      }
      recorded += d.length;
      emit(enc.output(d));
      live?.add((clock.now() - start) / 1000, d);
    },
    onInput(d) {
      counts.in += d.length;
      if (recordInput && !cut) emit(enc.input(d));
    },
    onResize(cols, rows) {
      if (!transfer && !cut) emit(enc.resize(cols, rows));
    },
    // Transfer channels only (their data is never recorded, so every marker is gatehouse's own):
    // the file audit's content markers (recorder/filecontent.ts), chained with the recording.
    mark(text: string) {
      if (transfer) emit(enc.marker(text));
    },
    onEnd(exit: ExitInfo) {
      if (!cut) emit(enc.finish(recordInput));
      if (transfer) emit(enc.marker(`transfer ended: ${exit.signal ? `signal ${exit.signal}` : `exit ${exit.code ?? '?'}`}, ${counts.in} bytes in, ${counts.out} bytes out`));
      hub?.close(ctx.sessionId, ctx.channel);
      if (live) indexer.remove(live);
      // The file is closed at once (its last writes are queued now, whatever happens next); the
      // index's last live step is awaited before the exact index replaces the steps.
      const closing = cast.close();
      ctl.track((async () => {
        await live?.stop();
        const r = await closing;
        if (!transfer && !r.error) await indexRecording(store, storage, rel, ctx.sessionId, ctx.channel).catch((err: unknown) => deps.log.warn({ err, session: ctx.sessionId }, 'indexing the recording failed'));
        const rec = await store.recordings.close({
          sessionId: ctx.sessionId, channel: ctx.channel, state: r.error ? 'failed' : 'closed', truncated: cut, size: r.size, sha256: r.sha256,
        }, sign);
        await store.audit.append(draft('recording.closed', 'system', {
          session: ctx.sessionId, channel: ctx.channel, user, file: rel, state: rec.state, size: r.size, sha256: r.sha256, seq: rec.seq ?? 0,
        }));
        // Row closed and chained: only now may the storage take it (S3: upload, then drop the spool copy).
        storage.closed(rel);
      })().catch((err: unknown) => deps.log.error({ err, session: ctx.sessionId }, 'closing recording failed')));
    },
  };
}
