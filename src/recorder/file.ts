import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * One recording file, written as the session runs. Lines are batched and written at least every
 * second (a bastion crash loses about a second at most) or as soon as 256 KiB are pending. Writes
 * are synchronous on purpose: memory stays bounded at one batch, and a disk slower than the
 * session slows the relay instead of growing a queue (a write of one batch to the page cache takes
 * well under a millisecond). The SHA-256 and size are computed over exactly the bytes written, so
 * closing needs no re-read. A write error is reported once through onError: the caller fails the
 * session closed.
 */
const FLUSH_BYTES = 256 * 1024;
const FLUSH_MS = 1000;

export class CastFile {
  private pending: string[] = [];
  private pendingBytes = 0;
  private closed = false;
  private failed: Error | null = null;
  private readonly hash: Hash = createHash('sha256');
  private size = 0;
  private readonly timer: NodeJS.Timeout;

  private constructor(readonly file: string, private readonly fd: number, private readonly onError: (err: Error) => void) {
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Create the file (and its directories, 0700); the file is new (never overwritten) and 0600. */
  static create(file: string, onError: (err: Error) => void): CastFile {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const fd = fs.openSync(file, 'wx', 0o600);
    return new CastFile(file, fd, onError);
  }

  append(text: string): void {
    if (this.closed || this.failed || text === '') return;
    this.pending.push(text);
    this.pendingBytes += text.length;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.failed || this.pending.length === 0) return;
    const buf = Buffer.from(this.pending.length === 1 ? this.pending[0]! : this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingBytes = 0;
    try {
      let off = 0;
      while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
      this.hash.update(buf);
      this.size += buf.length;
    } catch (err) {
      this.failed = err as Error;
      this.onError(this.failed);
    }
  }

  /** Write everything pending, fsync, close. Returns what is on disk. */
  async close(): Promise<{ size: number; sha256: string; error: Error | null }> {
    if (!this.closed) {
      this.closed = true;
      clearInterval(this.timer);
      this.flush();
      try {
        if (!this.failed) fs.fsyncSync(this.fd);
      } catch (err) {
        this.failed = err as Error;
      }
      fs.closeSync(this.fd);
    }
    return { size: this.size, sha256: this.hash.copy().digest('hex'), error: this.failed };
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
