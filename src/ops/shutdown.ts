import type { LiveSession } from '../proxy/connection.js';
import type { Logger } from '../shared/logger.js';
import { formatDuration } from '../shared/units.js';

/**
 * A graceful stop (SIGTERM): the listener is already closed, live operators are told the bastion
 * is going down, and their sessions may run on for up to `shutdownGrace`. Whatever is still live
 * then is ended by the caller with reason `shutdown`, so its recordings close cleanly (never as
 * `interrupted`, which means a crash). A second signal cuts the wait short.
 */
export interface Drain {
  /** Resolves when no session is live any more, when the grace ran out, or when cut. */
  readonly done: Promise<{ remaining: number; waitedMs: number }>;
  cut(): void;
}

export const POLL_MS = 100;

export function goingDownMessage(graceMs: number): string {
  return `the bastion is going down in ${formatDuration(graceMs)}: finish your work and log out; sessions still open then are closed`;
}

export function drainSessions(o: { live: ReadonlyMap<string, LiveSession>; graceMs: number; log: Logger; now?: () => number }): Drain {
  const now = o.now ?? (() => performance.now());
  const started = now();
  let cut: () => void = () => undefined;
  const done = new Promise<{ remaining: number; waitedMs: number }>((resolve) => {
    const finish = () => {
      clearInterval(poll);
      clearTimeout(limit);
      resolve({ remaining: o.live.size, waitedMs: Math.round(now() - started) });
    };
    const poll = setInterval(() => { if (o.live.size === 0) finish(); }, POLL_MS);
    const limit = setTimeout(finish, o.graceMs);
    cut = finish;
    if (o.live.size === 0 || o.graceMs <= 0) { finish(); return; }
    const message = goingDownMessage(o.graceMs);
    let told = 0;
    for (const s of o.live.values()) {
      for (const ch of s.channels()) { ch.notify(message); told++; }
    }
    o.log.info({ sessions: o.live.size, channels: told, graceMs: o.graceMs }, 'stopping: live sessions told the bastion is going down; waiting for them to end');
  });
  return { done, cut: () => cut() };
}
