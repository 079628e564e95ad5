import { Duplex, Writable } from 'node:stream';
import type { ServerChannel } from 'ssh2';
import { draft } from '../audit/events.js';
import type { Config } from '../config/schema.js';
import type { OperatorConnection } from '../proxy/connection.js';
import { refuse } from '../proxy/reject.js';
import type { Store } from '../store/types.js';
import { pool } from './pool.js';
import { MAX_RUN_HOSTS, parseMultiTarget } from './targets.js';

/**
 * `ssh alice@bastion 'LOGIN@HOST1,HOST2 CMD'` (or `LOGIN@group:NAME CMD`): one command on many hosts.
 *
 *   parse    targets.ts: the shape only (count bounded before any lookup, names checked)
 *   admit    every host through the gate (action exec, audited like any refusal). Fail closed: one
 *            refusal and nothing runs; the message names each refused host
 *   run      in parallel up to fleet.parallel, each host through OperatorConnection.serve, the
 *            same admit → dial → relay → record path as a single exec: its own channel number,
 *            channel row, session.channel event and recording, registered with the session so
 *            revocation and `sessions kill` end it. serve() is given a stand-in channel (HostChannel)
 *            that prefixes each line with `HOST: ` and keeps the exit status
 *   summary  host, exit status, duration; exit 0 only when every host returned 0
 * The operator's stdin is not sent anywhere (each target gets EOF at once, as with `ssh -n`).
 */
export interface MultiHostDeps {
  store: Store;
  config: Config;
}

/** A line longer than this is cut into several prefixed lines (memory stays bounded per host). */
const MAX_LINE = 64 * 1024;

export async function runMultiHost(down: ServerChannel, conn: OperatorConnection, line: string, tty: boolean, deps: MultiHostDeps): Promise<void> {
  const parsed = parseMultiTarget(line, MAX_RUN_HOSTS);
  if (!parsed.ok) return refuse(down, tty, parsed.message, 1);
  const { login, command } = parsed.target;

  let names = parsed.target.hosts;
  if (parsed.target.group !== null) {
    names = (await conn.gate.groupHosts(parsed.target.group)).map((h) => h.name);
    if (names.length === 0) return refuse(down, tty, `host group ${parsed.target.group} has no enabled host; nothing ran`, 1);
    if (names.length > MAX_RUN_HOSTS) return refuse(down, tty, `host group ${parsed.target.group} has ${names.length} hosts, more than ${MAX_RUN_HOSTS} in one run; nothing ran`, 1);
  }

  // Fail closed: every host is admitted before anything runs.
  const refused: string[] = [];
  const hosts: string[] = [];
  for (const name of names) {
    const d = await conn.admit({ host: name, login, action: 'exec', kind: 'exec' });
    if (!d.allow) refused.push(`  ${d.reason === 'unknown_host' ? d.message : `${name}: ${d.message}`}`);
    else if (!hosts.includes(d.host.name)) hosts.push(d.host.name); // a name and an address of one host run once
  }
  if (refused.length > 0 && parsed.target.group !== null) {
    // A group's members are not the operator's to know: only how many were refused.
    return refuse(down, tty, `access denied on ${refused.length} of ${names.length} host(s) of group ${parsed.target.group}; nothing ran`, 1);
  }
  if (refused.length > 0) {
    const list = refused.length > 20 ? [...refused.slice(0, 20), `  … and ${refused.length - 20} more`] : refused;
    return refuse(down, tty, `access denied on ${refused.length} of ${names.length} host(s); nothing ran:\n${list.join('\n')}`, 1);
  }

  await deps.store.audit.append(draft('fleet.run', 'system', { session: conn.id, user: conn.identity.user, login, hosts, command }));
  const nl = tty ? '\r\n' : '\n';
  const width = Math.max(...hosts.map((h) => h.length));
  const channels = new Set<HostChannel>();
  // The operator went away: every host's channel closes (the relay then closes the target side).
  // Hosts not started yet are never started: closing the channel (not the connection, e.g. a
  // multiplexed client) must stop the run, not only the hosts already running.
  let aborted = false;
  const closeAll = () => { aborted = true; for (const c of channels) c.close(); };
  down.once('close', closeAll);

  const results = await pool(hosts, deps.config.fleet.parallel, async (host) => {
    const started = conn.now();
    if (aborted || down.destroyed) return { host, exit: { code: null, signal: null }, ms: 0 };
    const ch = new HostChannel(down, `${host}: `, nl);
    channels.add(ch);
    await Promise.all([
      conn.serve(ch as unknown as ServerChannel, {
        target: { login, host, command }, kind: 'exec', action: 'exec', pty: null, env: {}, started: () => undefined,
      }).catch((err: unknown) => {
        conn.logError(err, 'multi-host channel failed');
        refuse(ch as unknown as ServerChannel, false, 'internal error; the administrators can find it in the log', 1);
      }),
      ch.done,
    ]);
    channels.delete(ch);
    return { host, exit: ch.exitInfo, ms: conn.now() - started };
  });
  down.removeListener('close', closeAll);

  const ok = results.filter((r) => r.exit.code === 0).length;
  const rows = results.map((r) => `${r.host.padEnd(width)}  ${(r.exit.code !== null ? String(r.exit.code) : r.exit.signal ? `signal ${r.exit.signal}` : '-').padEnd(9)}  ${(r.ms / 1000).toFixed(1)}s`);
  const summary = [``, `gatehouse: ${results.length} host(s), ${ok} exited 0, ${results.length - ok} failed`, `${'HOST'.padEnd(width)}  EXIT       DURATION`, ...rows, ''].join(nl);
  try {
    down.write(summary, () => {
      try { down.exit(ok === results.length ? 0 : 1); down.end(); } catch { /* closed */ }
    });
  } catch { /* the operator's channel is gone */ }
}

/**
 * What serve() and the relay see as the operator's channel for one host: output goes to the real
 * channel with every line prefixed by the host name; no input (EOF at once); the exit status is
 * kept for the summary instead of being sent.
 */
class HostChannel extends Duplex {
  readonly stderr: Writable;
  exitInfo: { code: number | null; signal: string | null } = { code: null, signal: null };
  readonly done: Promise<void>;
  private readonly out: LinePrefixer;
  private readonly err: LinePrefixer;

  constructor(real: ServerChannel, prefix: string, nl: string) {
    super({ allowHalfOpen: true });
    this.out = new LinePrefixer(prefix, nl, (b, cb) => send(real, b, cb));
    this.err = new LinePrefixer(prefix, nl, (b, cb) => send(real.stderr as unknown as Writable, b, cb));
    this.stderr = new Writable({
      write: (chunk: Buffer, _enc, cb) => this.err.write(chunk, cb),
      final: (cb) => this.err.flush(cb),
    });
    this.stderr.on('error', () => undefined);
    this.on('error', () => undefined);
    this.done = new Promise((resolve) => {
      this.once('finish', () => resolve());
      this.once('close', () => resolve());
    });
    this.push(null);
  }

  override _read(): void { /* no input: EOF was pushed */ }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.out.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.err.flush(() => this.out.flush(cb));
  }

  /** As ServerChannel.exit: a status, or a signal name. */
  exit(codeOrSignal: number | string): void {
    this.exitInfo = typeof codeOrSignal === 'number' ? { code: codeOrSignal, signal: null } : { code: null, signal: codeOrSignal };
  }

  close(): void {
    this.destroy();
  }
}

function send(w: Writable, b: Buffer, cb: () => void): void {
  try {
    if (w.destroyed || w.writableEnded) return cb();
    if (w.write(b)) cb();
    else w.once('drain', cb);
  } catch {
    cb();
  }
}

/**
 * Cuts a byte stream into lines and writes each as PREFIX + line + newline. A target must not be able
 * to pass for another: control characters other than tab (a lone CR, ESC sequences that move the
 * cursor or hide text, C1 controls) become "?", so every line shown starts with its own host's prefix.
 * The unfinished line is kept as a list of chunks and joined once (at a newline or MAX_LINE), so a
 * target sending one byte at a time costs what one large write costs.
 */
export class LinePrefixer {
  private parts: Buffer[] = [];
  private size = 0;
  private readonly prefix: Buffer;
  private readonly nl: Buffer;

  constructor(prefix: string, nl: string, private readonly sink: (b: Buffer, cb: () => void) => void) {
    this.prefix = Buffer.from(prefix);
    this.nl = Buffer.from(nl);
  }

  write(chunk: Buffer, cb: () => void): void {
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const i = chunk.indexOf(0x0a, start);
      if (i < 0) break;
      let line = this.take(chunk.subarray(start, i));
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      out.push(this.prefix, printable(line), this.nl);
      start = i + 1;
    }
    if (start < chunk.length) {
      this.parts.push(Buffer.from(chunk.subarray(start)));
      this.size += chunk.length - start;
    }
    if (this.size > MAX_LINE) {
      let data = this.take(Buffer.alloc(0));
      while (data.length > MAX_LINE) {
        out.push(this.prefix, printable(data.subarray(0, MAX_LINE)), this.nl);
        data = data.subarray(MAX_LINE);
      }
      if (data.length > 0) { this.parts = [Buffer.from(data)]; this.size = data.length; }
    }
    if (out.length === 0) return cb();
    this.sink(Buffer.concat(out), cb);
  }

  flush(cb: () => void): void {
    if (this.size === 0) return cb();
    const last = Buffer.concat([this.prefix, printable(this.take(Buffer.alloc(0))), this.nl]);
    this.sink(last, cb);
  }

  /** The kept chunks and `tail` as one buffer; nothing is kept afterwards. */
  private take(tail: Buffer): Buffer {
    if (this.parts.length === 0) return tail;
    const all = Buffer.concat([...this.parts, tail]);
    this.parts = [];
    this.size = 0;
    return all;
  }
}

const QUESTION = 0x3f;

/** C0 controls but tab, DEL, and UTF-8-encoded C1 controls (U+0080..U+009F) replaced by "?". */
export function printable(b: Buffer): Buffer {
  let copy: Buffer | null = null;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    const c0 = (c < 0x20 && c !== 0x09) || c === 0x7f;
    const c1 = c === 0xc2 && i + 1 < b.length && b[i + 1]! >= 0x80 && b[i + 1]! <= 0x9f;
    if (!c0 && !c1) continue;
    copy ??= Buffer.from(b);
    copy[i] = QUESTION;
    if (c1) { copy[i + 1] = QUESTION; i++; }
  }
  return copy ?? b;
}
