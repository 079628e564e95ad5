import { draft } from '../../audit/events.js';
import type { Store } from '../types.js';
import type { Ctx } from './db.js';
import { userId } from './lookup.js';

/** Failed-login counters and locks, in the database so they survive a restart and reach every node. */
export function lockoutTable(ctx: Ctx): Store['lockout'] {
  const { db } = ctx;
  const lockedUntil = (uid: number, now: number): number | null => {
    const r = db.prepare<[number], { locked_until: number }>('SELECT locked_until FROM user_locks WHERE user_id = ?').get(uid);
    return r && r.locked_until > now ? r.locked_until : null;
  };
  return {
    async lockedUntil(uid, now) {
      return lockedUntil(uid, now);
    },
    async recordFailure(uid, now, policy) {
      return db.transaction(() => {
        // Already locked (by another connection or process): neither counted nor locked again.
        const cur = db.prepare<[number], { locked_until: number }>('SELECT locked_until FROM user_locks WHERE user_id = ?').get(uid);
        if (cur && cur.locked_until > now) return null;
        db.prepare('INSERT INTO auth_failures (user_id, ts) VALUES (?, ?)').run(uid, now);
        db.prepare('DELETE FROM auth_failures WHERE user_id = ? AND ts <= ?').run(uid, now - policy.windowMs);
        const n = (db.prepare<[number], { n: number }>('SELECT count(*) AS n FROM auth_failures WHERE user_id = ?').get(uid))!.n;
        if (n < policy.failures) return null;
        const until = now + policy.durationMs;
        db.prepare('INSERT INTO user_locks (user_id, locked_until) VALUES (?, ?) ON CONFLICT(user_id) DO UPDATE SET locked_until = excluded.locked_until').run(uid, until);
        db.prepare('DELETE FROM auth_failures WHERE user_id = ?').run(uid);
        return until;
      }).immediate();
    },
    async clear(uid) {
      db.prepare('DELETE FROM auth_failures WHERE user_id = ?').run(uid);
    },
    async unlock(user, meta) {
      ctx.change(() => {
        const uid = userId(db, user);
        db.prepare('DELETE FROM auth_failures WHERE user_id = ?').run(uid);
        db.prepare('DELETE FROM user_locks WHERE user_id = ?').run(uid);
        return { result: undefined, events: [draft('admin.user.unlock', meta.actor, { user })] };
      });
    },
  };
}
