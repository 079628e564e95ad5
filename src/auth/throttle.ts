import type { Clock } from '../shared/clock.js';

/**
 * A growing delay per source address before answering a failed attempt: 0 for the first failure,
 * then 250 ms, 500 ms, 1 s … up to 8 s; forgotten after 10 minutes without failures. In memory:
 * it slows a guesser down, while the per-user lockout (in the store) is what stops one.
 */
const BASE_MS = 250;
const MAX_MS = 8000;
const FORGET_MS = 10 * 60_000;
const MAX_TRACKED = 100_000;

export class AddressThrottle {
  private readonly seen = new Map<string, { failures: number; last: number }>();
  constructor(private readonly clock: Clock) {}

  /** Record a failure and return how long to wait before answering it. */
  failure(address: string): number {
    const now = this.clock.now();
    const cur = this.seen.get(address);
    const failures = cur && now - cur.last < FORGET_MS ? cur.failures + 1 : 1;
    this.seen.delete(address);
    this.seen.set(address, { failures, last: now });
    if (this.seen.size > MAX_TRACKED) this.seen.delete(this.seen.keys().next().value!);
    return failures <= 1 ? 0 : Math.min(MAX_MS, BASE_MS * 2 ** (failures - 2));
  }

  success(address: string): void {
    this.seen.delete(address);
  }
}

/**
 * auth.mfaGrace: after a full key + TOTP login, the same user, key and source address may log in
 * with the key alone for a while. Any revocation of the user or key must call forget().
 */
export class MfaGrace {
  private readonly trusted = new Map<string, { until: number; enrolment: number }>();
  constructor(private readonly clock: Clock, private readonly graceMs: number) {}

  private key(user: string, fingerprint: string, address: string): string {
    return `${user}\u0000${fingerprint}\u0000${address}`;
  }

  /** `enrolment` identifies the TOTP enrolment that was used: trust ends with it. */
  remember(user: string, fingerprint: string, address: string, enrolment: number): void {
    if (this.graceMs > 0) this.trusted.set(this.key(user, fingerprint, address), { until: this.clock.now() + this.graceMs, enrolment });
  }

  trusts(user: string, fingerprint: string, address: string, enrolment: number): boolean {
    const k = this.key(user, fingerprint, address);
    const t = this.trusted.get(k);
    if (t === undefined) return false;
    if (t.until <= this.clock.now() || t.enrolment !== enrolment) {
      this.trusted.delete(k);
      return false;
    }
    return true;
  }

  /** Drop every trust of a user (or only of one key of theirs). */
  forget(user: string, fingerprint?: string): void {
    for (const k of this.trusted.keys()) {
      const [u, fp] = k.split('\u0000');
      if (u === user && (fingerprint === undefined || fp === fingerprint)) this.trusted.delete(k);
    }
  }
}
