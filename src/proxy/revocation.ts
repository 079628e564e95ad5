import { draft } from '../audit/events.js';
import type { AdmitReason, Gate } from '../auth/admit.js';
import type { MfaGrace } from '../auth/throttle.js';
import type { Config } from '../config/schema.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { formatDuration } from '../shared/units.js';
import type { Store } from '../store/types.js';
import type { LiveSession } from './connection.js';

/**
 * Revocation in one place. Whenever the policy version changes (any process, any change to users,
 * roles, keys, TOTP, groups, hosts or grants) every live connection and every channel in it is
 * admitted again by the same gate as at open (auth/admit); what it no longer allows is ended,
 * said to the operator and audited as session.terminated with the gate's reason. Grant expiry arms
 * a timer at the expiry time. The same loop applies the session limits (idle timeout with a
 * warning, maximum length) and carries out `gatehouse sessions kill` requests.
 */
export interface WatcherDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  config: Config;
  grace: MfaGrace;
  gate: Gate;
  entries: () => Iterable<LiveSession>;
}

export interface PolicyWatcher {
  /** Re-authorize now (also runs on every policy change and at grant expiry). */
  recheck(): Promise<void>;
  armExpiry(until: number | null): void;
  stop(): void;
}

const POLL_MS = 200;
const FAILURE_LOG_MS = 10_000;
const REVOKED = 'access revoked by an administrator';
/** setTimeout's longest delay; later expiries re-arm on the way. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function channelMessage(reason: AdmitReason, host: string): string {
  return reason === 'grant_expired' ? `your access to ${host} has expired` : REVOKED;
}

export function startPolicyWatcher(deps: WatcherDeps): PolicyWatcher {
  const { store, clock, log, config, grace } = deps;
  let version: number | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let recheckFailed = false;
  const timers = new Set<NodeJS.Timeout>();

  async function cause(): Promise<string | undefined> {
    const last = (await store.audit.list({ type: 'admin', limit: 1 }))[0];
    return last ? `${last.type} #${last.id} by ${last.actor}` : undefined;
  }

  async function terminated(entry: LiveSession, reason: string, extra: { channel?: number; host?: string; cause?: string }) {
    await store.audit.append(draft('session.terminated', 'system', { session: entry.id, user: entry.identity.user, reason, ...extra }));
  }

  async function recheckOnce(): Promise<void> {
    const entries = [...deps.entries()];
    if (entries.length === 0) return;
    const now = clock.now();
    let why: string | undefined;
    const causeOnce = async (): Promise<string | undefined> => {
      try {
        return (why ??= await cause());
      } catch {
        return undefined; // the event is written without its cause rather than the session kept
      }
    };
    // A failure on one session (a query cut by a failover) must not leave the others unchecked: each
    // is checked on its own, and any failure is thrown at the end so the pass is done again.
    let failure: unknown = null;
    for (const entry of entries) {
      try {
        await recheckEntry(entry, now, causeOnce);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== null) throw failure;
  }

  async function recheckEntry(entry: LiveSession, now: number, causeOnce: () => Promise<string | undefined>): Promise<void> {
    {
      const id = entry.identity;
      const channels = entry.channels();
      const r = await deps.gate.recheck(id, channels.map((ch) => ({ host: ch.grant.host, login: ch.grant.login, action: ch.action, pinnedHostKey: ch.grant.hostKey })), now);
      if (!r.identity.ok) {
        const reason = r.identity.reason;
        grace.forget(id.user, reason === 'key_removed' ? id.fingerprint : undefined);
        // Ended whether or not its audit row can be written: a revocation never waits on the store.
        try {
          await terminated(entry, reason, { cause: await causeOnce() });
        } finally {
          entry.end(`revoked:${reason}`, REVOKED);
        }
        return;
      }
      for (const [i, d] of r.channels.entries()) {
        if (d.allow) continue;
        const ch = channels[i]!;
        // `grant_expired` can name an older, expired grant while the channel's own grant was
        // removed (a revoked access request): then it is a revocation, said as one.
        const reason = d.reason === 'grant_expired' && (ch.grant.until === null || ch.grant.until > now) ? 'no_grant' : d.reason;
        try {
          await terminated(entry, reason, { channel: ch.channel, host: ch.grant.host, ...(reason === 'grant_expired' ? {} : { cause: await causeOnce() }) });
        } finally {
          entry.endChannel(ch.channel, channelMessage(reason, ch.grant.host));
        }
      }
    }
  }

  /** Serialized: a change arriving during a pass schedules exactly one more pass. */
  function recheck(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = recheckOnce()
      .catch((err: unknown) => {
        // The next pass (200 ms) checks every session again, whatever the policy version says.
        recheckFailed = true;
        log.error({ err }, 'revocation check failed');
      })
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          void recheck();
        }
      });
    return running;
  }

  async function carryOutKills(): Promise<void> {
    const byId = new Map([...deps.entries()].map((e) => [e.id, e]));
    for (const k of await store.kills.pending()) {
      const entry = byId.get(k.sessionId);
      if (entry) {
        try {
          await terminated(entry, 'killed_by_admin', { cause: `admin.session.kill by ${k.actor}${k.reason ? `: ${k.reason}` : ''}` });
        } finally {
          entry.end('killed_by_admin', 'session ended by an administrator');
        }
        await store.kills.done(k.id);
      } else if ((await store.sessions.get(k.sessionId))?.endedAt !== null) {
        await store.kills.done(k.id); // already over; on a cluster another node may hold it
      }
    }
  }

  async function limits(): Promise<void> {
    const now = clock.now();
    const { idleTimeout, maxDuration } = config.sessions;
    const warnBefore = Math.min(60_000, Math.floor(idleTimeout / 2));
    for (const entry of deps.entries()) {
      if (now - entry.startedAt >= maxDuration) {
        await terminated(entry, 'max_duration', {}).catch(() => undefined);
        entry.end('max_duration', `session ended: maximum session length (${formatDuration(maxDuration)}) reached`);
        continue;
      }
      const idle = now - entry.lastActivity;
      if (idle >= idleTimeout) {
        await terminated(entry, 'idle_timeout', {}).catch(() => undefined);
        entry.end('idle_timeout', `session ended: idle for ${formatDuration(idleTimeout)}`);
      } else if (idle >= idleTimeout - warnBefore) {
        entry.warnIdle(`idle: this session ends in ${formatDuration(idleTimeout - idle)} without activity`);
      }
    }
  }

  // One pass at a time: a push arriving during a poll's pass asks for one more pass, not a second in parallel.
  let passing: Promise<void> | null = null;
  let lastFailureLog = -Infinity;
  let passAgain = false;
  const pass = (): void => {
    if (passing) { passAgain = true; return; }
    passing = (async () => {
      try {
        const v = await store.policy.version();
        if (v !== version || recheckFailed) {
          recheckFailed = false;
          await recheck();
          await carryOutKills();
          // Only a version whose checks all went through counts as seen; else the next pass redoes them.
          if (!recheckFailed) version = v;
        }
      } finally {
        // Idle and length limits need only this clock: they hold while the store does not answer.
        await limits();
      }
    })().catch((err: unknown) => {
      // The store unreachable fails every pass (5 a second): say so once in a while, not each time.
      const now = clock.now();
      if (now - lastFailureLog >= FAILURE_LOG_MS) { lastFailureLog = now; log.error({ err }, 'policy watcher failed'); }
    }).finally(() => {
      passing = null;
      if (passAgain) { passAgain = false; pass(); }
    });
  };
  const tick = setInterval(pass, POLL_MS);
  tick.unref();
  // A store that pushes changes (PostgreSQL LISTEN/NOTIFY) is checked at once; polling stays the net.
  const unsubscribe = store.changes?.subscribe(pass);

  return {
    recheck,
    armExpiry(until) {
      if (until === null) return;
      const delay = Math.min(MAX_TIMER_MS, Math.max(0, until - clock.now()) + 5);
      const t = setTimeout(() => {
        timers.delete(t);
        if (until - clock.now() > 0) this.armExpiry(until);
        else void recheck();
      }, delay);
      t.unref();
      timers.add(t);
    },
    stop() {
      clearInterval(tick);
      unsubscribe?.();
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
