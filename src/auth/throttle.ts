import type { Clock } from '../shared/clock.js';
import type { LoginsStore } from '../store/types.js';

/**
 * The pre-auth slow-down as the authenticator sees it: this process's AddressThrottle, or with
 * `serve --workers N` the primary's, shared by the machine's workers (cluster/throttle.ts).
 */
export interface Throttle {
  /** Record a failure and return how long to wait before answering it. */
  failure(address: string): number | Promise<number>;
  success(address: string): void;
}

/**
 * A growing delay per source address before answering a failed attempt: 0 for the first failure,
 * then 250 ms, 500 ms, 1 s … up to 8 s; forgotten after 10 minutes without failures. In memory, per
 * node (one machine's workers share the primary's): unauthenticated traffic must never write to the
 * shared store. It slows a guesser down, while the per-user lockout (in the store) is what stops one.
 */
const BASE_MS = 250;
const MAX_MS = 8000;
const FORGET_MS = 10 * 60_000;
const MAX_TRACKED = 100_000;

export class AddressThrottle implements Throttle {
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
 * with the key alone for a while. Kept in the store (Store['logins']), so every worker and node
 * honours it, and it ends with the user, key or TOTP enrolment whichever process revokes them (the
 * store deletes the trust in the same transaction). forget() is the revocation pass's belt and braces.
 */
export class MfaGrace {
  constructor(private readonly logins: LoginsStore, private readonly clock: Clock, private readonly graceMs: number) {}

  /** `enrolment` identifies the TOTP enrolment that was used: trust ends with it. */
  async remember(user: string, fingerprint: string, address: string, enrolment: number): Promise<void> {
    if (this.graceMs > 0) await this.logins.trust({ user, fingerprint, address, enrolment, expiresAt: this.clock.now() + this.graceMs });
  }

  async trusts(user: string, fingerprint: string, address: string, enrolment: number): Promise<boolean> {
    if (this.graceMs <= 0) return false;
    return this.logins.trusted({ user, fingerprint, address, enrolment }, this.clock.now());
  }

  /** Drop every trust of a user (or only of one key of theirs). Never throws: callers do not wait. */
  forget(user: string, fingerprint?: string): Promise<void> {
    return this.logins.forget(user, fingerprint).catch(() => undefined);
  }
}
