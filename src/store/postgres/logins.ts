import type { LoginsStore } from '../types.js';
import { LOCK, type Ctx } from './db.js';
import { insertSession } from './sessions.js';

/**
 * Login state shared by every node (its users: auth/throttle.ts for the MFA grace, auth/pending.ts for
 * the TOTP-prompt seats, proxy/connection.ts for sessions.maxPerUser). Each check-and-take runs in one transaction
 * under a per-user advisory lock: READ COMMITTED alone would let two nodes both count n-1 and both
 * insert.
 */

/** Second key: hashtext(user). Namespaces not used by db.ts LOCK. */
const SEAT_LOCK = LOCK.nodes + 16;
const PENDING_LOCK = LOCK.nodes + 17;

/** Heartbeats are stamped with the database's clock (nodes.ts): staleness is measured on it too. */
const DB_NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';
/** $2: deadAfterMs. */
const LIVE_OF_USER = `SELECT count(*)::int AS n FROM sessions s LEFT JOIN nodes n ON n.name = s.node
  WHERE s.user_name = $1 AND s.ended_at IS NULL
    AND (n.name IS NULL OR (n.stopped_at IS NULL AND n.reaped_at IS NULL AND n.heartbeat_at > ${DB_NOW} - $2))`;

export function loginsTable(ctx: Ctx): LoginsStore {
  const { db, clock } = ctx;
  const pendingOf = async (user: string, after: number) =>
    (await db.one<{ n: number }>('SELECT count(*)::int AS n FROM mfa_pending WHERE user_name = $1 AND since > $2', [user, after]))!.n;
  return {
    async trust(g) {
      await ctx.tx(async () => {
        // FOR SHARE holds the user row against a concurrent disable until this commits: the disable's
        // trigger then sees (and deletes) this trust, or this sees the user disabled.
        const u = await db.one<{ id: number }>(`SELECT u.id FROM users u
          JOIN ssh_keys k ON k.user_id = u.id AND k.fingerprint = $2
          JOIN totp t ON t.user_id = u.id AND t.created_at = $3
          WHERE u.name = $1 AND NOT u.disabled FOR SHARE OF u, k, t`, [g.user, g.fingerprint, g.enrolment]);
        if (!u) return;
        await db.run(`INSERT INTO mfa_grace (user_id, fingerprint, address, enrolment, expires_at) VALUES ($1, $2, $3, $4, $5)
          ON CONFLICT (user_id, fingerprint, address) DO UPDATE SET enrolment = excluded.enrolment, expires_at = excluded.expires_at`,
        [u.id, g.fingerprint, g.address, g.enrolment, g.expiresAt]);
      });
    },
    async trusted(g, now) {
      const r = await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM mfa_grace m
        JOIN users u ON u.id = m.user_id AND NOT u.disabled
        JOIN ssh_keys k ON k.fingerprint = m.fingerprint AND k.user_id = u.id
        JOIN totp t ON t.user_id = u.id AND t.created_at = m.enrolment
        WHERE u.name = $1 AND m.fingerprint = $2 AND m.enrolment = $3 AND m.address = $4 AND m.expires_at > $5`,
      [g.user, g.fingerprint, g.enrolment, g.address, now]);
      return (r?.n ?? 0) > 0;
    },
    async forget(user, fingerprint) {
      if (fingerprint === undefined) await db.run('DELETE FROM mfa_grace WHERE user_id IN (SELECT id FROM users WHERE name = $1)', [user]);
      else await db.run('DELETE FROM mfa_grace WHERE fingerprint = $1 AND user_id IN (SELECT id FROM users WHERE name = $2)', [fingerprint, user]);
      await db.run('DELETE FROM mfa_grace WHERE expires_at <= $1', [clock.now()]);
    },
    async enterPending(user, seat, now, limit, maxAgeMs) {
      return ctx.tx(async () => {
        await db.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PENDING_LOCK, user]);
        await db.run('DELETE FROM mfa_pending WHERE user_name = $1 AND since <= $2', [user, now - maxAgeMs]);
        const mine = await db.one<{ user_name: string }>('SELECT user_name FROM mfa_pending WHERE seat = $1', [seat]);
        if (mine?.user_name === user) return true;
        if (mine) await db.run('DELETE FROM mfa_pending WHERE seat = $1', [seat]);
        if ((await pendingOf(user, now - maxAgeMs)) >= limit) return false;
        await db.run('INSERT INTO mfa_pending (seat, user_name, since) VALUES ($1, $2, $3)', [seat, user, now]);
        return true;
      });
    },
    async leavePending(seat) {
      await db.run('DELETE FROM mfa_pending WHERE seat = $1', [seat]);
    },
    async countPending(user, now, maxAgeMs) {
      return pendingOf(user, now - maxAgeMs);
    },
    async openSession(s, seat) {
      return ctx.tx(async (): Promise<{ opened: true } | { opened: false; live: number }> => {
        await db.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', [SEAT_LOCK, s.user]);
        const now = clock.now();
        const live = (await db.one<{ n: number }>(LIVE_OF_USER, [s.user, seat.deadAfterMs]))!.n;
        if (live >= seat.limit) return { opened: false, live };
        await insertSession(db, s, now);
        return { opened: true };
      });
    },
    async countLive(user, deadAfterMs) {
      return (await db.one<{ n: number }>(LIVE_OF_USER, [user, deadAfterMs]))!.n;
    },
  };
}
