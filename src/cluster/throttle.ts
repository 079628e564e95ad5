import cluster from 'node:cluster';
import { AddressThrottle, type Throttle } from '../auth/throttle.js';
import type { Clock } from '../shared/clock.js';

/**
 * The pre-auth slow-down (auth/throttle.ts AddressThrottle) shared by one machine's workers: with
 * `serve --workers N` a guesser's connections land on every worker in turn, and N throttles would
 * each see 1/N of its failures. Each worker asks the primary, which keeps the one throttle of the
 * node. Unauthenticated traffic never reaches the shared store, so nodes on other machines keep
 * their own: the throttle is per node, the per-user lockout (in the store) is what is shared.
 *
 * A question the primary does not answer within ASK_TIMEOUT_MS (a busy or older primary) is
 * answered by the worker's own throttle, which counts every failure too: a slow primary can make
 * the slow-down per worker again, never absent.
 */
export interface ThrottleAsk { gh: 'throttle'; id: number; op: 'failure' | 'success'; address: string }
export interface ThrottleAnswer { gh: 'throttle-answer'; id: number; delay: number }

export const ASK_TIMEOUT_MS = 250;
/** An address is an IP literal; anything longer is not one of ours. */
const MAX_ADDRESS = 100;

export function isThrottleAsk(m: unknown): m is ThrottleAsk {
  const a = m as Partial<ThrottleAsk> | null;
  return typeof a === 'object' && a !== null && a.gh === 'throttle' && Number.isSafeInteger(a.id)
    && (a.op === 'failure' || a.op === 'success') && typeof a.address === 'string' && a.address.length <= MAX_ADDRESS;
}

export function isThrottleAnswer(m: unknown): m is ThrottleAnswer {
  const a = m as Partial<ThrottleAnswer> | null;
  return typeof a === 'object' && a !== null && a.gh === 'throttle-answer' && Number.isSafeInteger(a.id) && typeof a.delay === 'number';
}

/** The primary's side, for every message of a worker. */
export function throttleAnswerer(throttle: AddressThrottle): (w: { send(m: ThrottleAnswer, h: undefined, o: object, cb: (err: Error | null) => void): boolean }, m: unknown) => void {
  return (w, m) => {
    answerThrottle(throttle, m, (a) => {
      try { w.send(a, undefined, {}, () => undefined); } catch { /* the worker is exiting */ }
    });
  };
}

/** Answer a worker's question from the node's throttle. False: not a throttle message. */
export function answerThrottle(throttle: AddressThrottle, m: unknown, reply: (a: ThrottleAnswer) => void): boolean {
  if (!isThrottleAsk(m)) return false;
  if (m.op === 'success') {
    throttle.success(m.address);
    return true;
  }
  reply({ gh: 'throttle-answer', id: m.id, delay: throttle.failure(m.address) });
  return true;
}

/** A worker's side: the primary's answer, or its own throttle's when none comes in time. */
export class PrimaryThrottle implements Throttle {
  private next = 1;
  private readonly waiting = new Map<number, (delay: number) => void>();

  constructor(
    private readonly local: AddressThrottle,
    private readonly send: (m: ThrottleAsk) => void,
    private readonly timeoutMs = ASK_TIMEOUT_MS,
  ) {}

  /** Give every message from the primary here; answers to our questions are taken. */
  receive(m: unknown): void {
    if (!isThrottleAnswer(m)) return;
    this.waiting.get(m.id)?.(m.delay);
  }

  failure(address: string): Promise<number> {
    const own = this.local.failure(address);
    const id = this.next++;
    return new Promise<number>((resolve) => {
      const done = (delay: number) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(delay);
      };
      const timer = setTimeout(() => done(own), this.timeoutMs);
      this.waiting.set(id, (delay) => done(Math.max(0, Math.min(delay, 60_000))));
      try {
        this.send({ gh: 'throttle', id, op: 'failure', address });
      } catch {
        done(own); // the channel to the primary is closing
      }
    });
  }

  success(address: string): void {
    this.local.success(address);
    try { this.send({ gh: 'throttle', id: this.next++, op: 'success', address }); } catch { /* the primary is gone */ }
  }
}

/** The throttle for this process: the primary's when it is a worker of `serve --workers`, else its own. */
export function createThrottle(clock: Clock): Throttle {
  const local = new AddressThrottle(clock);
  if (!cluster.isWorker || !process.send) return local;
  const t = new PrimaryThrottle(local, (m) => {
    if (!process.connected) throw new Error('the channel to the primary is closed');
    // With a callback, a send that fails is reported there instead of as an 'error' on process.
    process.send!(m, undefined, {}, () => undefined);
  });
  process.on('message', (m: unknown) => t.receive(m));
  return t;
}
