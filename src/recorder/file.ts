import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Sink, type Offload } from '../shared/offload.js';

/**
 * One recording file, written as the session runs. Lines are batched and handed to the writer
 * thread (shared/offload.ts) at least every second (a bastion crash loses about a second at most)
 * or as soon as a batch is full. Memory stays bounded: if the writer falls behind (a disk slower
 * than the session), the relay waits for it instead of growing a queue. The SHA-256 and size are
 * computed over exactly the bytes written, so closing needs no re-read. A write error is reported
 * once through onError: the caller fails the session closed.
 */
const FLUSH_MS = 1000;

export class CastFile {
  private readonly sink: Sink;
  private failed: Error | null = null;
  private closing: Promise<{ size: number; sha256: string; error: Error | null }> | null = null;
  private readonly timer: NodeJS.Timeout;

  private constructor(offload: Offload, readonly file: string, private readonly fd: number, onError: (err: Error) => void) {
    this.sink = new Sink(offload, fd, (err) => {
      if (this.failed) return;
      this.failed = err;
      onError(err);
    });
    this.timer = setInterval(() => this.sink.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Create the file (and its directories, 0700); the file is new (never overwritten) and 0600. */
  static create(offload: Offload, file: string, onError: (err: Error) => void): CastFile {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      return new CastFile(offload, file, fd, onError);
    } catch (err) {
      // The hashing thread is stopped: no recording, so no empty file left behind either.
      fs.closeSync(fd);
      fs.unlinkSync(file);
      throw err;
    }
  }

  /** Complete lines only, so the file never ends inside a line except while a write is under way. */
  append(lines: Buffer): void {
    if (this.closing || this.failed || lines.length === 0) return;
    this.sink.write(lines);
  }

  /** Write everything pending, fsync, close. Resolves with what is on disk. */
  close(): Promise<{ size: number; sha256: string; error: Error | null }> {
    if (!this.closing) {
      clearInterval(this.timer);
      this.closing = this.sink.close(true).then((r) => {
        fs.closeSync(this.fd);
        return { size: r.size, sha256: r.sha256, error: this.failed ?? r.error };
      });
    }
    return this.closing;
  }
}

/** Where a channel's recording lives: built from ids and the start date only, never from input. */
export function recordingPath(root: string, sessionId: string, channel: number, startedAt: number): string {
  if (!/^[a-z0-9-]{1,64}$/.test(sessionId) || !Number.isSafeInteger(channel) || channel < 0) {
    throw new Error(`invalid recording id ${sessionId}/${channel}`);
  }
  const d = new Date(startedAt);
  const yyyy = String(d.getUTCFullYear());
  const mm = String(d.getUTCMonth() + 1).padStart(2, '0');
  const dd = String(d.getUTCDate()).padStart(2, '0');
  return path.join(root, yyyy, mm, dd, `${sessionId}-${channel}.cast`);
}

/** Cut a file back to its last complete line (crash recovery); returns its new size and SHA-256. */
export function truncateToLastLine(file: string): { size: number; sha256: string; cut: number } {
  const data = fs.readFileSync(file);
  const end = data.lastIndexOf(0x0a) + 1;
  if (end < data.length) fs.truncateSync(file, end);
  return { size: end, sha256: createHash('sha256').update(data.subarray(0, end)).digest('hex'), cut: data.length - end };
}

export function fileDigest(file: string): { size: number; sha256: string } {
  const data = fs.readFileSync(file);
  return { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}
