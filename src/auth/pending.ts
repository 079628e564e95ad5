import type { Clock } from '../shared/clock.js';

/**
 * How many connections of one user sit at the TOTP prompt at once (auth.maxPendingMfa), shared by
 * every connection of the server. Without a cap, a holder of a stolen key parks many connections
 * past the key step and spends the lockout's failure budget on all of them in parallel.
 *
 * A connection enters after its key signature verified and leaves when it logs in, goes back to
 * the key step or closes (ConnectionAuth.dispose). As a backstop against a missed leave, a seat
 * older than `maxAgeMs` (the login grace time, after which the socket is gone anyway) is freed.
 */
export class PendingMfa {
  private readonly seats = new Map<string, Map<object, number>>();

  constructor(private readonly clock: Clock, readonly limit: number, private readonly maxAgeMs: number) {}

  /** Take a seat for `conn`; false when the user already has `limit` others at the prompt. */
  enter(user: string, conn: object): boolean {
    const mine = this.live(user);
    if (mine.has(conn)) return true;
    if (mine.size >= this.limit) return false;
    mine.set(conn, this.clock.now());
    this.seats.set(user, mine);
    return true;
  }

  leave(user: string, conn: object): void {
    const mine = this.seats.get(user);
    if (!mine) return;
    mine.delete(conn);
    if (mine.size === 0) this.seats.delete(user);
  }

  count(user: string): number {
    return this.live(user).size;
  }

  private live(user: string): Map<object, number> {
    const mine = this.seats.get(user) ?? new Map<object, number>();
    const oldest = this.clock.now() - this.maxAgeMs;
    for (const [conn, since] of mine) if (since <= oldest) mine.delete(conn);
    if (mine.size === 0) this.seats.delete(user);
    return mine;
  }
}
