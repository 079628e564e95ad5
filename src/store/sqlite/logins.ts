import type { LoginsStore } from '../types.js';
import type { Ctx } from './db.js';
import { insertSession } from './sessions.js';

/**
 * Login state shared by every process on the file (its users: auth/throttle.ts for the MFA grace,
 * auth/pending.ts for the TOTP-prompt seats, proxy/connection.ts for sessions.maxPerUser). Each check-and-take runs in an
 * IMMEDIATE transaction: SQLite's write lock serializes it against every other process.
 */

/** Live sessions of a user, except those of nodes known to be gone (stopped, reaped, or silent). */
const LIVE_OF_USER = `SELECT count(*) AS n FROM sessions s LEFT JOIN nodes n ON n.name = s.node
  WHERE s.user_name = ? AND s.ended_at IS NULL
    AND (n.name IS NULL OR (n.stopped_at IS NULL AND n.reaped_at IS NULL AND n.heartbeat_at > ?))`;

export function loginsTable(ctx: Ctx): LoginsStore {
  const { db, clock } = ctx;
  const liveOf = db.prepare<[string, number], { n: number }>(LIVE_OF_USER);
  const pendingOf = db.prepare<[string, number], { n: number }>('SELECT count(*) AS n FROM mfa_pending WHERE user_name = ? AND since > ?');
  return {
    async trust(g) {
      // Only for a user, key and enrolment as they are now: a revocation that committed first wins.
      db.prepare(`INSERT INTO mfa_grace (user_id, fingerprint, address, enrolment, expires_at)
        SELECT u.id, k.fingerprint, ?, t.created_at, ? FROM users u
          JOIN ssh_keys k ON k.user_id = u.id AND k.fingerprint = ?
          JOIN totp t ON t.user_id = u.id AND t.created_at = ?
        WHERE u.name = ? AND u.disabled = 0
        ON CONFLICT (user_id, fingerprint, address) DO UPDATE SET enrolment = excluded.enrolment, expires_at = excluded.expires_at`)
        .run(g.address, g.expiresAt, g.fingerprint, g.enrolment, g.user);
    },
    async trusted(g, now) {
      const r = db.prepare<[string, string, number, string, number], { n: number }>(`SELECT count(*) AS n FROM mfa_grace m
        JOIN users u ON u.id = m.user_id AND u.disabled = 0
        JOIN ssh_keys k ON k.fingerprint = m.fingerprint AND k.user_id = u.id
        JOIN totp t ON t.user_id = u.id AND t.created_at = m.enrolment
        WHERE u.name = ? AND m.fingerprint = ? AND m.enrolment = ? AND m.address = ? AND m.expires_at > ?`)
        .get(g.user, g.fingerprint, g.enrolment, g.address, now)!;
      return r.n > 0;
    },
    async forget(user, fingerprint) {
      if (fingerprint === undefined) db.prepare('DELETE FROM mfa_grace WHERE user_id IN (SELECT id FROM users WHERE name = ?)').run(user);
      else db.prepare('DELETE FROM mfa_grace WHERE fingerprint = ? AND user_id IN (SELECT id FROM users WHERE name = ?)').run(fingerprint, user);
      // Expired trusts of anyone go with it: the table holds only what can still be used.
      db.prepare('DELETE FROM mfa_grace WHERE expires_at <= ?').run(clock.now());
    },
    async enterPending(user, seat, now, limit, maxAgeMs) {
      return db.transaction(() => {
        // Seats older than the login grace time belong to connections that are gone (a killed node).
        db.prepare('DELETE FROM mfa_pending WHERE user_name = ? AND since <= ?').run(user, now - maxAgeMs);
        const mine = db.prepare<[string], { user_name: string }>('SELECT user_name FROM mfa_pending WHERE seat = ?').get(seat);
        if (mine?.user_name === user) return true;
        if (mine) db.prepare('DELETE FROM mfa_pending WHERE seat = ?').run(seat);
        if (pendingOf.get(user, now - maxAgeMs)!.n >= limit) return false;
        db.prepare('INSERT INTO mfa_pending (seat, user_name, since) VALUES (?, ?, ?)').run(seat, user, now);
        return true;
      }).immediate();
    },
    async leavePending(seat) {
      db.prepare('DELETE FROM mfa_pending WHERE seat = ?').run(seat);
    },
    async countPending(user, now, maxAgeMs) {
      return pendingOf.get(user, now - maxAgeMs)!.n;
    },
    async openSession(s, seat) {
      return db.transaction((): { opened: true } | { opened: false; live: number } => {
        const now = clock.now();
        const live = liveOf.get(s.user, now - seat.deadAfterMs)!.n;
        if (live >= seat.limit) return { opened: false, live };
        insertSession(db, s, now);
        return { opened: true };
      }).immediate();
    },
    async countLive(user, deadAfterMs) {
      return liveOf.get(user, clock.now() - deadAfterMs)!.n;
    },
  };
}
