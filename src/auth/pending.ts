import { randomUUID } from 'node:crypto';
import type { Clock } from '../shared/clock.js';
import type { LoginsStore } from '../store/types.js';

/**
 * How many connections of one user sit at the TOTP prompt at once (auth.maxPendingMfa), shared by
 * every connection of every worker and node (the seats are in the store). Without a cap, a holder
 * of a stolen key parks many connections past the key step and spends the lockout's failure budget
 * on all of them in parallel.
 *
 * A connection enters after its key signature verified and leaves when it logs in, goes back to
 * the key step or closes (ConnectionAuth.dispose). As a backstop against a missed leave (a node
 * killed with its connections at the prompt), a seat older than `maxAgeMs` (the login grace time,
 * after which the socket is gone anyway) is freed.
 */
export class PendingMfa {
  private readonly seats = new WeakMap<object, string>();
  /** One connection's enter and leave reach the store in the order they were made. */
  private readonly queue = new WeakMap<object, Promise<unknown>>();

  constructor(private readonly logins: LoginsStore, private readonly clock: Clock, readonly limit: number, private readonly maxAgeMs: number) {}

  /** Take a seat for `conn`; false when the user already has `limit` others at the prompt. */
  enter(user: string, conn: object): Promise<boolean> {
    const seat = this.seat(conn);
    return this.inOrder(conn, () => this.logins.enterPending(user, seat, this.clock.now(), this.limit, this.maxAgeMs));
  }

  /** Never throws (a seat left behind expires): callers do not wait. */
  leave(_user: string, conn: object): Promise<void> {
    const seat = this.seats.get(conn);
    if (seat === undefined) return Promise.resolve();
    return this.inOrder(conn, () => this.logins.leavePending(seat)).catch(() => undefined);
  }

  count(user: string): Promise<number> {
    return this.logins.countPending(user, this.clock.now(), this.maxAgeMs);
  }

  private seat(conn: object): string {
    let s = this.seats.get(conn);
    if (s === undefined) {
      s = randomUUID();
      this.seats.set(conn, s);
    }
    return s;
  }

  private inOrder<T>(conn: object, op: () => Promise<T>): Promise<T> {
    const p = (this.queue.get(conn) ?? Promise.resolve()).catch(() => undefined).then(op);
    this.queue.set(conn, p);
    return p;
  }
}
