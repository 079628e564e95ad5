import { createHash, type Hash } from 'node:crypto';

/**
 * SHA-256 of a file's content as it passes, when the pieces add up to the file: each piece comes
 * with its offset (SFTP clients pipeline READ/WRITE requests with explicit offsets and may re-ask
 * for a short read), so the hash follows offsets, not arrival order. A piece ahead of the hashed
 * end waits in a bounded buffer; an overlap, a gap left at the end, a failed piece or more held
 * bytes than the bound make the hash `partial` — never a wrong hash.
 */
export const MAX_HELD_BYTES = 4 * 1024 * 1024;
const MAX_HELD_PIECES = 256;

/**
 * Bytes held out of order by every file of one channel together: 1,024 handles of 4 MiB each would
 * let one operator make the bastion hold gigabytes. Past it, the piece's file is `partial`.
 */
export class HeldBudget {
  used = 0;
  constructor(readonly max = 32 * 1024 * 1024) {}
}

export class ContentHash {
  private readonly hash: Hash = createHash('sha256');
  private end = 0;
  private readonly held = new Map<number, Buffer>();
  private heldBytes = 0;
  private broken: string | null = null;
  /** Every byte that passed, contiguous or not. */
  bytes = 0;
  /** Sees the content in order, exactly the bytes hashed (content capture). */
  tap: ((data: Buffer) => void) | null = null;

  constructor(private readonly maxHeld = MAX_HELD_BYTES, private readonly budget = new HeldBudget()) {}

  /** A piece of the content at `offset`. */
  add(offset: number, data: Buffer): void {
    this.bytes += data.length;
    if (this.broken || data.length === 0) return;
    if (offset === this.end) {
      this.hash.update(data);
      this.tap?.(data);
      this.end += data.length;
      this.drain();
    } else if (offset < this.end) {
      this.fail('overlapping pieces');
    } else if (this.held.has(offset) || this.held.size >= MAX_HELD_PIECES || this.heldBytes + data.length > this.maxHeld
      || this.budget.used + data.length > this.budget.max) {
      this.fail('too far out of order');
    } else {
      // Copied: the relay's chunk is not ours to keep.
      this.held.set(offset, Buffer.from(data));
      this.heldBytes += data.length;
      this.budget.used += data.length;
    }
  }

  private drain(): void {
    for (let next = this.held.get(this.end); next; next = this.held.get(this.end)) {
      this.held.delete(this.end);
      this.heldBytes -= next.length;
      this.budget.used -= next.length;
      this.hash.update(next);
      this.tap?.(next);
      this.end += next.length;
    }
    // A held piece that now overlaps the hashed part can never fit.
    for (const off of this.held.keys()) if (off < this.end) { this.fail('overlapping pieces'); return; }
  }

  fail(why: string): void {
    if (this.broken) return;
    this.broken = why;
    this.release();
  }

  /** Give the held pieces back to the channel's budget. */
  private release(): void {
    this.budget.used -= this.heldBytes;
    this.held.clear();
    this.heldBytes = 0;
  }

  /** The content's end as hashed so far (where the next sequential piece starts). */
  get contiguous(): number { return this.end; }

  get partialReason(): string | null {
    if (this.broken) return this.broken;
    if (this.held.size > 0) return 'gap in the content';
    return null;
  }

  /** The hex SHA-256 of bytes 0..contiguous, or null when the pieces do not add up. Call once. */
  finish(): string | null {
    const why = this.partialReason;
    this.release();
    if (why !== null) return null;
    return this.hash.digest('hex');
  }
}
