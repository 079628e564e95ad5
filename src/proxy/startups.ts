/**
 * Pre-authentication limits, like OpenSSH's MaxStartups and PerSourceMaxStartups: a connection
 * holds a slot from its first TCP byte until it has authenticated or closed. One address can hold
 * at most `perSource` slots and all addresses together `total`, so a client that opens hundreds of
 * half-open connections (each kept for the login grace time) fills its own share and nobody
 * else's: another address still logs in. A connection over a limit is closed at once.
 */
export interface StartupLimits {
  perSource: number;
  total: number;
}

export class StartupLimiter {
  private readonly bySource = new Map<string, number>();
  private total = 0;
  /** Connections closed because of a limit since the last report (for a rate-limited log line). */
  dropped = 0;

  constructor(private readonly limits: StartupLimits) {}

  /** A release function when there is room, else null. Release is idempotent. */
  acquire(source: string): (() => void) | null {
    const held = this.bySource.get(source) ?? 0;
    if (held >= this.limits.perSource || this.total >= this.limits.total) {
      this.dropped++;
      return null;
    }
    this.bySource.set(source, held + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const n = (this.bySource.get(source) ?? 1) - 1;
      if (n <= 0) this.bySource.delete(source);
      else this.bySource.set(source, n);
    };
  }
}
