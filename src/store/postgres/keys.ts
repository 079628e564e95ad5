import { draft } from '../../audit/events.js';
import { alreadyExists, notFound } from '../../shared/errors.js';
import type { KeyRecord, Store } from '../types.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { userId } from './lookup.js';

interface KeyRow {
  id: number; user: string; fingerprint: string; type: string; bits: number; public_key: string; comment: string;
  created_at: number; verify_required: boolean; sk_counter: number | null;
}

const SELECT = `SELECT k.id, u.name AS user, k.fingerprint, k.type, k.bits, k.public_key, k.comment, k.created_at, k.verify_required, k.sk_counter
  FROM ssh_keys k JOIN users u ON u.id = k.user_id`;

const toRecord = (r: KeyRow): KeyRecord => ({
  id: r.id, user: r.user, fingerprint: r.fingerprint, type: r.type, bits: r.bits,
  publicKey: r.public_key, comment: r.comment, createdAt: r.created_at,
  verifyRequired: r.verify_required, skCounter: r.sk_counter,
});

export function keysTable(ctx: Ctx): Store['keys'] {
  const { db } = ctx;
  const byFp = (fp: string) => db.one<KeyRow>(`${SELECT} WHERE k.fingerprint = $1`, [fp]);
  const taken = (owner: string, user: string, fp: string) => alreadyExists(
    owner === user ? `key ${fp} is already registered for user "${user}"` : `key ${fp} already belongs to another user`,
    'a key identifies exactly one person; nothing was added',
  );
  return {
    async add(user, keys, meta) {
      return ctx.change(async (now) => {
        const uid = await userId(db, user);
        const seen = new Set<string>();
        for (const k of keys) {
          if (seen.has(k.fingerprint)) continue;
          seen.add(k.fingerprint);
          const owner = await byFp(k.fingerprint);
          if (owner) throw taken(owner.user, user, k.fingerprint);
          try {
            await db.run(
              'INSERT INTO ssh_keys (user_id, fingerprint, type, bits, public_key, comment, created_at, verify_required) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
              [uid, k.fingerprint, k.type, k.bits, k.publicKey, k.comment, now, k.verifyRequired === true],
            );
          } catch (err) {
            // Another node added it between the check and the insert.
            if (isUniqueViolation(err)) throw taken('', user, k.fingerprint);
            throw err;
          }
        }
        const added: KeyRecord[] = [];
        for (const fp of seen) added.push(toRecord((await byFp(fp))!));
        const ev = draft('admin.user.key.add', meta.actor, {
          user, keys: added.map((k) => ({ fingerprint: k.fingerprint, type: k.type, bits: k.bits, comment: k.comment })),
        });
        return { result: added, events: [ev] };
      });
    },
    async list(user) {
      await userId(db, user);
      return (await db.rows<KeyRow>(`${SELECT} WHERE u.name = $1 ORDER BY k.id`, [user])).map(toRecord);
    },
    async remove(user, fingerprint, meta) {
      await ctx.change(async () => {
        const uid = await userId(db, user);
        if ((await db.run('DELETE FROM ssh_keys WHERE user_id = $1 AND fingerprint = $2', [uid, fingerprint])) === 0) {
          throw notFound(`user "${user}" has no key ${fingerprint}`, `list them with: gatehouse user key list ${user}`);
        }
        return { result: undefined, events: [draft('admin.user.key.remove', meta.actor, { user, fingerprint })] };
      });
    },
    async byFingerprint(fingerprint) {
      const r = await byFp(fingerprint);
      return r ? toRecord(r) : null;
    },
    async claimCounter(fingerprint, counter) {
      if (!Number.isInteger(counter) || counter < 0 || counter > 0xffffffff) return false;
      // One statement: the comparison and the write are one row-locked step on every node.
      return (await db.run('UPDATE ssh_keys SET sk_counter = $1 WHERE fingerprint = $2 AND (sk_counter IS NULL OR sk_counter < $1)', [counter, fingerprint])) === 1;
    },
  };
}
