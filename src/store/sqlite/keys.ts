import { draft } from '../../audit/events.js';
import { alreadyExists, notFound } from '../../shared/errors.js';
import type { KeyRecord, Store } from '../types.js';
import type { Ctx } from './db.js';
import { userId } from './lookup.js';

interface KeyRow {
  id: number;
  user: string;
  fingerprint: string;
  type: string;
  bits: number;
  public_key: string;
  comment: string;
  created_at: number;
  verify_required: number;
  sk_counter: number | null;
}

const SELECT = `SELECT k.id, u.name AS user, k.fingerprint, k.type, k.bits, k.public_key, k.comment, k.created_at, k.verify_required, k.sk_counter
  FROM ssh_keys k JOIN users u ON u.id = k.user_id`;

const toRecord = (r: KeyRow): KeyRecord => ({
  id: r.id, user: r.user, fingerprint: r.fingerprint, type: r.type, bits: r.bits,
  publicKey: r.public_key, comment: r.comment, createdAt: r.created_at,
  verifyRequired: r.verify_required === 1, skCounter: r.sk_counter,
});

export function keysTable(ctx: Ctx): Store['keys'] {
  const { db } = ctx;
  const byFp = db.prepare<[string], KeyRow>(`${SELECT} WHERE k.fingerprint = ?`);
  // One statement: the comparison and the write cannot be split by another connection's claim.
  const claim = db.prepare<[number, string, number]>(
    'UPDATE ssh_keys SET sk_counter = ? WHERE fingerprint = ? AND (sk_counter IS NULL OR sk_counter < ?)',
  );
  return {
    async add(user, keys, meta) {
      return ctx.change((now) => {
        const uid = userId(db, user);
        const insert = db.prepare(
          'INSERT INTO ssh_keys (user_id, fingerprint, type, bits, public_key, comment, created_at, verify_required) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        );
        const seen = new Set<string>();
        for (const k of keys) {
          if (seen.has(k.fingerprint)) continue;
          seen.add(k.fingerprint);
          const owner = byFp.get(k.fingerprint);
          if (owner) {
            throw alreadyExists(
              owner.user === user ? `key ${k.fingerprint} is already registered for user "${user}"` : `key ${k.fingerprint} already belongs to another user`,
              'a key identifies exactly one person; nothing was added',
            );
          }
          insert.run(uid, k.fingerprint, k.type, k.bits, k.publicKey, k.comment, now, k.verifyRequired ? 1 : 0);
        }
        const added = [...seen].map((fp) => toRecord(byFp.get(fp)!));
        const ev = draft('admin.user.key.add', meta.actor, {
          user, keys: added.map((k) => ({ fingerprint: k.fingerprint, type: k.type, bits: k.bits, comment: k.comment })),
        });
        return { result: added, events: [ev] };
      });
    },
    async list(user) {
      userId(db, user);
      return db.prepare<[string], KeyRow>(`${SELECT} WHERE u.name = ? ORDER BY k.id`).all(user).map(toRecord);
    },
    async remove(user, fingerprint, meta) {
      ctx.change(() => {
        const uid = userId(db, user);
        if (db.prepare('DELETE FROM ssh_keys WHERE user_id = ? AND fingerprint = ?').run(uid, fingerprint).changes === 0) {
          throw notFound(`user "${user}" has no key ${fingerprint}`, `list them with: gatehouse user key list ${user}`);
        }
        return { result: undefined, events: [draft('admin.user.key.remove', meta.actor, { user, fingerprint })] };
      });
    },
    async byFingerprint(fingerprint) {
      const r = byFp.get(fingerprint);
      return r ? toRecord(r) : null;
    },
    async claimCounter(fingerprint, counter) {
      if (!Number.isInteger(counter) || counter < 0 || counter > 0xffffffff) return false;
      return claim.run(counter, fingerprint, counter).changes === 1;
    },
  };
}
