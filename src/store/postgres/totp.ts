import { draft } from '../../audit/events.js';
import { alreadyExists, notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { userId } from './lookup.js';

export function totpTable(ctx: Ctx): Store['totp'] {
  const { db } = ctx;
  const enrolled = (user: string) => alreadyExists(`user "${user}" already has TOTP enrolled`, `to replace it: gatehouse user totp reset ${user}, then enroll again`);
  return {
    async enroll(user, seal, imported, meta) {
      await ctx.change(async (now) => {
        const uid = await userId(db, user);
        if (await db.one('SELECT 1 FROM totp WHERE user_id = $1', [uid])) throw enrolled(user);
        try {
          await db.run('INSERT INTO totp (user_id, secret, last_step, created_at) VALUES ($1, $2, NULL, $3)', [uid, seal(uid), now]);
        } catch (err) {
          if (isUniqueViolation(err)) throw enrolled(user);
          throw err;
        }
        return { result: undefined, events: [draft('admin.user.totp.enroll', meta.actor, { user, imported })] };
      });
    },
    async get(user) {
      const row = await db.one<{ user_id: number; secret: Buffer; last_step: number | null; created_at: number }>(
        'SELECT t.user_id, t.secret, t.last_step, t.created_at FROM totp t JOIN users u ON u.id = t.user_id WHERE u.name = $1', [user]);
      return row ? { userId: row.user_id, sealedSecret: row.secret, lastStep: row.last_step, createdAt: row.created_at } : null;
    },
    async reset(user, meta) {
      await ctx.change(async () => {
        const uid = await userId(db, user);
        if ((await db.run('DELETE FROM totp WHERE user_id = $1', [uid])) === 0) {
          throw notFound(`user "${user}" has no TOTP enrolled`, `enroll with: gatehouse user totp enroll ${user}`);
        }
        return { result: undefined, events: [draft('admin.user.totp.reset', meta.actor, { user })] };
      });
    },
    async claimStep(uid, step) {
      // One conditional UPDATE: the row lock makes a second claim of the same step re-check the
      // condition after the first commits, so of two nodes racing with one code exactly one wins.
      return (await db.run('UPDATE totp SET last_step = $1 WHERE user_id = $2 AND (last_step IS NULL OR last_step < $1)', [step, uid])) === 1;
    },
  };
}
