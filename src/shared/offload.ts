import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WireError, WorkerInit, WorkerReply, WorkerRequest } from './offload-worker.js';

/**
 * Hashing and recording writes, off the relay's thread. Every byte a channel carries is hashed
 * (SHA-256 of the full streams) and every recorded byte is written and hashed; on the relay's
 * event loop that was about a third of gatehouse's CPU in a bulk transfer (BENCHMARKS.md), while
 * the second core sat partly idle. A Sink batches bytes on the relay's thread (a copy, no hashing)
 * and hands each full batch to one worker thread (offload-worker.ts), which writes it (if the sink
 * has a file) and hashes it, in order.
 *
 * Memory stays bounded as before: when the worker is more than MAX_INFLIGHT bytes behind, the
 * relay's thread waits for it (a disk slower than the session slows the relay instead of growing a
 * queue). Durability is unchanged: a batch is handed over as soon as it is full or flushed, and
 * the worker writes it at once.
 */
const MAX_INFLIGHT = 32 * 1024 * 1024;
const MAX_BATCH = 1024 * 1024;
const FIRST_BATCH = 16 * 1024;
/** Recycled batches kept for reuse; a burst beyond this goes back to the GC. */
const FREE_KEPT = 8;
const STOPPED = 'the hashing thread stopped';

export interface SinkResult {
  size: number;
  sha256: string;
  error: Error | null;
}

/**
 * Where the worker's code is. Built (dist/), it is the compiled sibling, run as it is. Run from the
 * TypeScript sources (vitest, tsx), the worker does not inherit the parent's TypeScript loader, and
 * on Node 20 a worker ignores the hooks of `--import tsx` in its execArgv for its entry file; so
 * the entry is a two-statement module that registers tsx (a devDependency) in the worker and then
 * imports offload-worker.ts. That path is never taken by the built server.
 */
function workerEntry(): URL {
  const js = new URL('./offload-worker.js', import.meta.url);
  if (fs.existsSync(fileURLToPath(js))) return js;
  const ts = new URL('./offload-worker.ts', import.meta.url);
  if (!fs.existsSync(fileURLToPath(ts))) throw new Error(`the hashing thread's code is missing: ${fileURLToPath(js)}`);
  const boot = `const { register } = await import(${JSON.stringify(tsxApi())}); register(); await import(${JSON.stringify(ts.href)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(boot)}`);
}

/** tsx's ESM register API, as its exports map names it (require.resolve would give the CommonJS build, which fails here). */
function tsxApi(): string {
  const pkgFile = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  return pathToFileURL(path.join(path.dirname(pkgFile), pkg.exports['./esm/api']!.import.default)).href;
}

function toError(e: WireError): Error {
  return Object.assign(new Error(e.message), e.code ? { code: e.code } : {});
}

interface Pending { onError: (err: Error) => void; onClosed?: (r: SinkResult) => void }

/**
 * The worker thread and the sinks open on it; one per app (createGatehouse), stopped with it.
 * The worker starts with start() or the first sink, and is unref'd while no sink is open (it never
 * keeps the process alive on its own). If it dies, every open sink fails and the next sink starts a
 * new one.
 */
export class Offload {
  private readonly inflight = new Int32Array(new SharedArrayBuffer(4));
  private worker: Worker | null = null;
  /** Settles when the current worker has loaded its code, or failed to. */
  private ready: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly sinks = new Map<number, Pending>();
  private nextId = 1;
  /** Full-size batches the worker is done with, ready for reuse (at most FREE_KEPT). */
  private readonly free: ArrayBuffer[] = [];

  /** Starts the worker and waits until its code has loaded: a broken install fails at start-up, not at the first session. */
  async start(): Promise<void> {
    this.stopped = false;
    if (!this.worker) this.spawn();
    await this.ready;
  }

  /** Ends the worker; sinks still open fail, and new sinks are refused until start(). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.worker?.terminate();
  }

  /** Tests only: end the worker as a crash would (open sinks fail, the next sink starts a new one). */
  async crashForTests(): Promise<void> {
    await this.worker?.terminate();
  }

  batch(size: number): Buffer {
    const ab = size === MAX_BATCH ? this.free.pop() : undefined;
    // allocUnsafeSlow: never the shared pool, so the memory can be moved to the worker.
    return ab ? Buffer.from(ab) : Buffer.allocUnsafeSlow(size);
  }

  private get w(): Worker {
    return this.worker ?? this.spawn();
  }

  private spawn(): Worker {
    const workerData: WorkerInit = { inflight: this.inflight.buffer as SharedArrayBuffer, maxBatch: MAX_BATCH };
    const w = new Worker(workerEntry(), { workerData });
    // The worker must not keep the process alive on its own; open sinks hold it with ref().
    w.unref();
    let loaded = (): void => undefined;
    let failed = (_err: Error): void => undefined;
    this.ready = new Promise<void>((resolve, reject) => { loaded = resolve; failed = reject; });
    // Only start() waits on this; sinks learn of a failure through lost().
    this.ready.catch(() => undefined);
    w.on('message', (m: WorkerReply) => (m.op === 'ready' ? loaded() : this.reply(m)));
    w.on('error', (err) => { failed(err); this.lost(w, err); });
    w.on('exit', () => { const err = new Error(STOPPED); failed(err); this.lost(w, err); });
    this.worker = w;
    return w;
  }

  private post(m: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    this.w.postMessage(m, transfer);
  }

  private reply(m: Exclude<WorkerReply, { op: 'ready' }>): void {
    if (m.op === 'free') { if (this.free.length < FREE_KEPT) this.free.push(m.buf); return; }
    const p = this.sinks.get(m.id);
    if (!p) return;
    if (m.op === 'failed') { p.onError(toError(m.error)); return; }
    this.sinks.delete(m.id);
    if (this.sinks.size === 0) this.worker?.unref();
    p.onClosed?.({ size: m.size, sha256: m.sha256, error: m.error ? toError(m.error) : null });
  }

  /** Worker w died: every open sink fails (a recording then fails closed); the next sink starts a new one. */
  private lost(w: Worker, err: Error): void {
    // 'error' and then 'exit' both come; and a late event of an old worker must not touch a new one.
    if (this.worker !== w) return;
    this.worker = null;
    Atomics.store(this.inflight, 0, 0);
    const open = [...this.sinks.values()];
    this.sinks.clear();
    for (const p of open) {
      p.onError(err);
      p.onClosed?.({ size: 0, sha256: '', error: err });
    }
  }

  open(fd: number | null, onError: (err: Error) => void): number {
    if (this.stopped) throw new Error(STOPPED);
    const id = this.nextId++;
    const w = this.w;
    this.sinks.set(id, { onError });
    w.ref();
    this.post({ op: 'open', id, fd });
    return id;
  }

  /** Hands buf's memory over to the worker (the caller must not touch it again). */
  data(id: number, buf: Buffer, len: number): void {
    if (!this.sinks.has(id)) return;
    // Wait while the worker is far behind; it wakes us after every batch.
    for (let cur = Atomics.load(this.inflight, 0); cur > MAX_INFLIGHT && this.worker; cur = Atomics.load(this.inflight, 0)) {
      Atomics.wait(this.inflight, 0, cur, 100);
    }
    Atomics.add(this.inflight, 0, len);
    const ab = buf.buffer as ArrayBuffer;
    this.post({ op: 'data', id, buf: ab, len }, [ab]);
  }

  close(id: number, fsync: boolean): Promise<SinkResult> {
    const p = this.sinks.get(id);
    if (!p) return Promise.resolve({ size: 0, sha256: '', error: new Error(STOPPED) });
    return new Promise((resolve) => {
      p.onClosed = resolve;
      this.post({ op: 'close', id, fsync });
    });
  }
}

/**
 * A byte stream hashed (and, with an fd, written to that file) by the worker. write() copies into
 * the current batch; the batch goes to the worker when full or on flush(). close() resolves with
 * the size and SHA-256 of everything written, and the file's write error if any; the caller then
 * closes the fd. onError is called once, as soon as a write fails. Throws if the Offload is stopped.
 */
export class Sink {
  private readonly id: number;
  private batch: Buffer | null = null;
  private used = 0;
  private cap = FIRST_BATCH;
  private closing: Promise<SinkResult> | null = null;

  constructor(private readonly off: Offload, fd: number | null, onError: (err: Error) => void = () => undefined) {
    this.id = off.open(fd, onError);
  }

  write(data: Buffer): void {
    if (this.closing) return;
    let at = 0;
    while (at < data.length) {
      if (!this.batch) this.batch = this.off.batch(this.cap);
      const n = data.copy(this.batch, this.used, at);
      this.used += n;
      at += n;
      if (this.used === this.batch.length) {
        this.flush();
        // Busy streams get bigger batches (fewer hand-overs); quiet ones keep a small one.
        this.cap = Math.min(this.cap * 2, MAX_BATCH);
      }
    }
  }

  flush(): void {
    if (!this.batch || this.used === 0) return;
    this.off.data(this.id, this.batch, this.used);
    this.batch = null;
    this.used = 0;
  }

  close(fsync = false): Promise<SinkResult> {
    if (!this.closing) {
      this.flush();
      this.closing = this.off.close(this.id, fsync);
    }
    return this.closing;
  }
}
