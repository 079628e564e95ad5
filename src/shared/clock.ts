/** Time is injected everywhere it matters (TOTP, lockout, grant expiry, audit, recordings) so tests control it. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Wall-clock milliseconds with sub-millisecond resolution, for recording timestamps. */
export const highResClock: Clock = { now: () => performance.timeOrigin + performance.now() };

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor(private ms: number) {}
  now(): number {
    return this.ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
