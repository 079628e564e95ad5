import { Worker } from 'node:worker_threads';

/**
 * Hashing and recording writes, off the relay's thread. Every byte a channel carries is hashed
 * (SHA-256 of the full streams) and every recorded byte is written and hashed; on the relay's
 * event loop that was about a third of gatehouse's CPU in a bulk transfer (BENCHMARKS.md), while
 * the second core sat partly idle. A Sink batches bytes on the relay's thread (a copy, no hashing)
 * and hands each full batch to one worker thread, which writes it (if the sink has a file) and
 * hashes it, in order.
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

export interface SinkResult {
  size: number;
  sha256: string;
  error: Error | null;
}

// CommonJS, evaluated in the worker: it must not depend on how this module was loaded (dist or
// the TypeScript sources under the tests).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const inflight = new Int32Array(workerData.inflight);
const sinks = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'open') {
    sinks.set(m.id, { fd: m.fd, hash: createHash('sha256'), size: 0, error: null });
  } else if (m.op === 'data') {
    const s = sinks.get(m.id);
    const buf = Buffer.from(m.buf, 0, m.len);
    if (s && !s.error) {
      try {
        if (s.fd !== null) { let off = 0; while (off < buf.length) off += fs.writeSync(s.fd, buf, off, buf.length - off); }
        s.hash.update(buf);
        s.size += buf.length;
      } catch (err) {
        s.error = { message: String(err && err.message || err), code: err && err.code };
        parentPort.postMessage({ op: 'failed', id: m.id, error: s.error });
      }
    }
    Atomics.sub(inflight, 0, m.len);
    Atomics.notify(inflight, 0);
    // Full-size batches go back to be reused: allocating 1 MiB per MiB relayed kept the GC busy.
    if (m.buf.byteLength === workerData.maxBatch) parentPort.postMessage({ op: 'free', buf: m.buf }, [m.buf]);
  } else if (m.op === 'close') {
    const s = sinks.get(m.id);
    sinks.delete(m.id);
    let error = s.error;
    // The fd stays open: it belongs to the main thread, which closes it.
    if (s.fd !== null && !error && m.fsync) {
      try { fs.fsyncSync(s.fd); } catch (err) { error = { message: String(err && err.message || err), code: err && err.code }; }
    }
    parentPort.postMessage({ op: 'closed', id: m.id, size: s.size, sha256: s.hash.digest('hex'), error });
  }
});
`;

interface WireError { message: string; code?: string }
type Reply =
  | { op: 'free'; buf: ArrayBuffer }
  | { op: 'failed'; id: number; error: WireError }
  | { op: 'closed'; id: number; size: number; sha256: string; error: WireError | null };

function toError(e: WireError): Error {
  return Object.assign(new Error(e.message), e.code ? { code: e.code } : {});
}

interface Pending { onError: (err: Error) => void; onClosed?: (r: SinkResult) => void }

class Offload {
  private readonly inflight = new Int32Array(new SharedArrayBuffer(4));
  private worker: Worker | null = null;
  private readonly sinks = new Map<number, Pending>();
  private nextId = 1;
  /** Full-size batches the worker is done with, ready for reuse (at most FREE_KEPT). */
  private readonly free: ArrayBuffer[] = [];

  batch(size: number): Buffer {
    const ab = size === MAX_BATCH ? this.free.pop() : undefined;
    // allocUnsafeSlow: never the shared pool, so the memory can be moved to the worker.
    return ab ? Buffer.from(ab) : Buffer.allocUnsafeSlow(size);
  }

  private get w(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { inflight: this.inflight.buffer, maxBatch: MAX_BATCH } });
    // The worker must not keep the process alive on its own; open sinks hold it with ref().
    w.unref();
    w.on('message', (m: Reply) => this.reply(m));
    w.on('error', (err) => this.lost(err));
    w.on('exit', () => this.lost(new Error('the hashing thread stopped')));
    this.worker = w;
    return w;
  }

  private reply(m: Reply): void {
    if (m.op === 'free') { if (this.free.length < FREE_KEPT) this.free.push(m.buf); return; }
    const p = this.sinks.get(m.id);
    if (!p) return;
    if (m.op === 'failed') { p.onError(toError(m.error)); return; }
    this.sinks.delete(m.id);
    if (this.sinks.size === 0) this.worker?.unref();
    p.onClosed?.({ size: m.size, sha256: m.sha256, error: m.error ? toError(m.error) : null });
  }

  /** The worker died: every open sink fails (a recording then fails closed); the next sink starts a new one. */
  private lost(err: Error): void {
    if (!this.worker) return;
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
    const id = this.nextId++;
    this.sinks.set(id, { onError });
    const w = this.w;
    w.ref();
    w.postMessage({ op: 'open', id, fd });
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
    this.w.postMessage({ op: 'data', id, buf: ab, len }, [ab]);
  }

  close(id: number, fsync: boolean): Promise<SinkResult> {
    const p = this.sinks.get(id);
    if (!p) return Promise.resolve({ size: 0, sha256: '', error: new Error('the hashing thread stopped') });
    return new Promise((resolve) => {
      p.onClosed = resolve;
      this.w.postMessage({ op: 'close', id, fsync });
    });
  }
}

let shared: Offload | null = null;

/** Tests only: stop the worker as a crash would. */
export async function stopOffloadWorkerForTests(): Promise<void> {
  await (shared as unknown as { worker: Worker | null } | null)?.worker?.terminate();
}

/**
 * A byte stream hashed (and, with an fd, written to that file) by the worker. write() copies into
 * the current batch; the batch goes to the worker when full or on flush(). close() resolves with
 * the size and SHA-256 of everything written, and the file's write error if any; the caller then
 * closes the fd. onError is called once, as soon as a write fails.
 */
export class Sink {
  private readonly off: Offload;
  private readonly id: number;
  private batch: Buffer | null = null;
  private used = 0;
  private cap = FIRST_BATCH;
  private closing: Promise<SinkResult> | null = null;

  constructor(fd: number | null, onError: (err: Error) => void = () => undefined) {
    this.off = shared ??= new Offload();
    this.id = this.off.open(fd, onError);
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
