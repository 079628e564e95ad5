import { draft } from '../../audit/events.js';
import type { Store } from '../types.js';
import { LOCK, type Ctx } from './db.js';
import { userId } from './lookup.js';

/** Failed-login counters and locks, shared by every node: one user's failures are counted one at a time. */
export function lockoutTable(ctx: Ctx): Store['lockout'] {
  const { db } = ctx;
  return {
    async lockedUntil(uid, now) {
      const r = await db.one<{ locked_until: number }>('SELECT locked_until FROM user_locks WHERE user_id = $1', [uid]);
      return r && r.locked_until > now ? r.locked_until : null;
    },
    async recordFailure(uid, now, policy) {
      return ctx.tx(async () => {
        // Per user, across nodes: the count and the lock it leads to are one step.
        await ctx.lock(LOCK.lockout(uid));
        // Already locked (by another node or process): neither counted nor locked again.
        const cur = await db.one<{ locked_until: number }>('SELECT locked_until FROM user_locks WHERE user_id = $1', [uid]);
        if (cur && cur.locked_until > now) return null;
        await db.run('INSERT INTO auth_failures (user_id, ts) VALUES ($1, $2)', [uid, now]);
        await db.run('DELETE FROM auth_failures WHERE user_id = $1 AND ts <= $2', [uid, now - policy.windowMs]);
        const n = (await db.one<{ n: number }>('SELECT count(*) AS n FROM auth_failures WHERE user_id = $1', [uid]))!.n;
        if (n < policy.failures) return null;
        const until = now + policy.durationMs;
        await db.run('INSERT INTO user_locks (user_id, locked_until) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET locked_until = excluded.locked_until', [uid, until]);
        await db.run('DELETE FROM auth_failures WHERE user_id = $1', [uid]);
        return until;
      });
    },
    async clear(uid) {
      await db.run('DELETE FROM auth_failures WHERE user_id = $1', [uid]);
    },
    async unlock(user, meta) {
      await ctx.change(async () => {
        const uid = await userId(db, user);
        await db.run('DELETE FROM auth_failures WHERE user_id = $1', [uid]);
        await db.run('DELETE FROM user_locks WHERE user_id = $1', [uid]);
        return { result: undefined, events: [draft('admin.user.unlock', meta.actor, { user })] };
      });
    },
  };
}
