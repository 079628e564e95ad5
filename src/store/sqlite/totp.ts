import { draft } from '../../audit/events.js';
import { alreadyExists, notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import type { Ctx } from './db.js';
import { userId } from './lookup.js';

export function totpTable(ctx: Ctx): Store['totp'] {
  const { db } = ctx;
  // The claim is one conditional UPDATE: two connections racing with the same code cannot both
  // succeed, whichever process they run in.
  const claim = db.prepare('UPDATE totp SET last_step = ? WHERE user_id = ? AND (last_step IS NULL OR last_step < ?)');
  return {
    async enroll(user, seal, imported, meta) {
      ctx.change((now) => {
        const uid = userId(db, user);
        if (db.prepare('SELECT 1 FROM totp WHERE user_id = ?').get(uid)) {
          throw alreadyExists(`user "${user}" already has TOTP enrolled`, `to replace it: gatehouse user totp reset ${user}, then enroll again`);
        }
        db.prepare('INSERT INTO totp (user_id, secret, last_step, created_at) VALUES (?, ?, NULL, ?)').run(uid, seal(uid), now);
        return { result: undefined, events: [draft('admin.user.totp.enroll', meta.actor, { user, imported })] };
      });
    },
    async get(user) {
      const row = db
        .prepare<[string], { user_id: number; secret: Buffer; last_step: number | null; created_at: number }>(
          'SELECT t.user_id, t.secret, t.last_step, t.created_at FROM totp t JOIN users u ON u.id = t.user_id WHERE u.name = ?',
        )
        .get(user);
      return row ? { userId: row.user_id, sealedSecret: row.secret, lastStep: row.last_step, createdAt: row.created_at } : null;
    },
    async reset(user, meta) {
      ctx.change(() => {
        const uid = userId(db, user);
        if (db.prepare('DELETE FROM totp WHERE user_id = ?').run(uid).changes === 0) {
          throw notFound(`user "${user}" has no TOTP enrolled`, `enroll with: gatehouse user totp enroll ${user}`);
        }
        return { result: undefined, events: [draft('admin.user.totp.reset', meta.actor, { user })] };
      });
    },
    async claimStep(uid, step) {
      return claim.run(step, uid, step).changes === 1;
    },
  };
}
