/**
 * One liveness check per live channel, shared by its viewers. Each spool view asks the store every
 * second whether its channel is still live (two queries); N viewers of one channel would cost N
 * checks a second. Viewers of a (session, channel) hold one refcounted entry instead: a check
 * started less than `maxAgeMs` ago (or still running) answers them all.
 */
export interface SharedLiveness {
  /** Whether the channel is still live, as its last shared check (at most maxAgeMs old) says. */
  isLive(): Promise<boolean>;
  /** This viewer is gone (idempotent); the entry goes with its last viewer. */
  release(): void;
}

/** A check unanswered after this many check intervals is no longer shared: the next viewer asks anew. */
const STALE_FACTOR = 5;

interface Entry {
  refs: number;
  last: { at: number; answer: Promise<boolean>; settled: boolean } | null;
}

export class LivenessChecks {
  private readonly entries = new Map<string, Entry>();

  /**
   * @param check the store's answer for one channel
   * @param maxAgeMs how old a shared answer may be (the views' check interval)
   * @param now the clock (injected for tests)
   */
  constructor(
    private readonly check: (sessionId: string, channel: number) => Promise<boolean>,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  acquire(sessionId: string, channel: number): SharedLiveness {
    // A session id never holds a space (web/input.ts SESSION_ID), so the key is unambiguous either way.
    const key = `${sessionId} ${channel}`;
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { refs: 0, last: null };
      this.entries.set(key, entry);
    }
    entry.refs++;
    const held = entry;
    let released = false;
    return {
      isLive: () => {
        const now = this.now();
        const last = held.last;
        // A check still running is shared, but not for ever: one that hangs (a store that stopped
        // answering) must not hold every later viewer of the channel on its answer.
        const fresh = last && (last.settled ? now - last.at < this.maxAgeMs : now - last.at < STALE_FACTOR * this.maxAgeMs);
        if (last && fresh) return last.answer;
        const answer = this.check(sessionId, channel);
        const mine = { at: now, answer, settled: false };
        held.last = mine;
        // A failed check is not kept: the next viewer asks again (this one's view ends on it).
        answer.then(() => { mine.settled = true; }, () => { mine.settled = true; if (held.last === mine) held.last = null; });
        return answer;
      },
      release: () => {
        if (released) return;
        released = true;
        if (--held.refs === 0 && this.entries.get(key) === held) this.entries.delete(key);
      },
    };
  }

  /** Channels with at least one viewer (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }
}
