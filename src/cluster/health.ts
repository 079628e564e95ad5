import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';

/**
 * Whether the store answers. Fed by the heartbeat (and any caller that saw a query fail): the first
 * failure marks the store lost and arms the grace timer; a success before it runs out recovers.
 * When the grace runs out, `expire` ends the live sessions once per loss.
 */
export class StoreHealth {
  private since: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: { clock: Clock; graceMs: number; log: Logger; expire: () => void }) {}

  lost(): boolean {
    return this.since !== null;
  }

  failed(err: unknown): void {
    if (this.since !== null) return;
    this.since = this.o.clock.now();
    this.o.log.error({ err, graceMs: this.o.graceMs }, 'the store cannot be reached: new logins are refused; live sessions end if it is not back within the grace');
    this.timer = setTimeout(() => {
      this.timer = null;
      this.o.log.error({ lostForMs: this.o.clock.now() - (this.since ?? 0) }, 'the store is still unreachable: ending the live sessions (store_unreachable)');
      this.o.expire();
    }, this.o.graceMs);
    this.timer.unref();
  }

  ok(): void {
    if (this.since === null) return;
    this.o.log.warn({ lostForMs: this.o.clock.now() - this.since }, 'the store answers again: logins accepted');
    this.since = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
