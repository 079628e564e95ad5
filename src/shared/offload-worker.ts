import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';

/**
 * The worker side of shared/offload.ts: writes each batch to its sink's file (if it has one) and
 * hashes it, in order. It imports nothing but node built-ins, so it loads the same from dist/ and
 * from the TypeScript sources (see workerEntry in offload.ts).
 */

/** workerData. */
export interface WorkerInit {
  /** One Int32: bytes handed over and not yet processed (the relay's thread waits on it). */
  inflight: SharedArrayBuffer;
  /** Batches of exactly this size are sent back for reuse. */
  maxBatch: number;
}

export interface WireError { message: string; code?: string }

export type WorkerRequest =
  | { op: 'open'; id: number; fd: number | null }
  | { op: 'data'; id: number; buf: ArrayBuffer; len: number }
  | { op: 'close'; id: number; fsync: boolean };

export type WorkerReply =
  | { op: 'ready' }
  | { op: 'free'; buf: ArrayBuffer }
  | { op: 'failed'; id: number; error: WireError }
  | { op: 'closed'; id: number; size: number; sha256: string; error: WireError | null };

interface OpenSink { fd: number | null; hash: Hash; size: number; error: WireError | null }

function wireError(err: unknown): WireError {
  const e = err as NodeJS.ErrnoException | null;
  return { message: String(e?.message ?? err), ...(e?.code ? { code: e.code } : {}) };
}

function serve(port: MessagePort, init: WorkerInit): void {
  const inflight = new Int32Array(init.inflight);
  const sinks = new Map<number, OpenSink>();
  const send = (m: WorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

  port.on('message', (m: WorkerRequest) => {
    if (m.op === 'open') {
      sinks.set(m.id, { fd: m.fd, hash: createHash('sha256'), size: 0, error: null });
    } else if (m.op === 'data') {
      const s = sinks.get(m.id);
      const buf = Buffer.from(m.buf, 0, m.len);
      if (s && !s.error) {
        try {
          if (s.fd !== null) {
            for (let off = 0; off < buf.length;) off += fs.writeSync(s.fd, buf, off, buf.length - off);
          }
          s.hash.update(buf);
          s.size += buf.length;
        } catch (err) {
          s.error = wireError(err);
          send({ op: 'failed', id: m.id, error: s.error });
        }
      }
      Atomics.sub(inflight, 0, m.len);
      Atomics.notify(inflight, 0);
      // Full-size batches go back to be reused: allocating 1 MiB per MiB relayed kept the GC busy.
      if (m.buf.byteLength === init.maxBatch) send({ op: 'free', buf: m.buf }, [m.buf]);
    } else {
      const s = sinks.get(m.id);
      if (!s) {
        send({ op: 'closed', id: m.id, size: 0, sha256: '', error: { message: `no open sink ${m.id}` } });
        return;
      }
      sinks.delete(m.id);
      let error = s.error;
      // The fd stays open: it belongs to the main thread, which closes it.
      if (s.fd !== null && !error && m.fsync) {
        try { fs.fsyncSync(s.fd); } catch (err) { error = wireError(err); }
      }
      send({ op: 'closed', id: m.id, size: s.size, sha256: s.hash.digest('hex'), error });
    }
  });
  send({ op: 'ready' });
}

// Only as a worker: on the main thread (an accidental import) this module does nothing.
if (parentPort) serve(parentPort, workerData as WorkerInit);
