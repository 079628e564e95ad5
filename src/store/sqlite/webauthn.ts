import { draft } from '../../audit/events.js';
import { alreadyExists, notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import { toWebauthnRecord as toRecord, type WebauthnRow as Row } from '../rows.js';
import type { Ctx } from './db.js';
import { userId } from './lookup.js';

const SELECT = `SELECT c.id, c.user_id, u.name, c.credential_id, c.public_key, c.counter, c.transports, c.created_at, c.last_used_at
  FROM webauthn_credentials c JOIN users u ON u.id = c.user_id`;

/** The web login's WebAuthn credentials. Adding and removing are audited in the same transaction. */
export function webauthnTable(ctx: Ctx): Store['webauthn'] {
  const { db } = ctx;
  // One conditional UPDATE: of two logins racing with the same counter exactly one wins. A counter
  // of 0 on both sides is an authenticator that keeps none (allowed, as WebAuthn says).
  const claim = db.prepare(`UPDATE webauthn_credentials SET counter = ?, last_used_at = ?
    WHERE credential_id = ? AND (counter < ? OR (counter = 0 AND ? = 0))`);
  const byId = db.prepare<[string], Row>(`${SELECT} WHERE c.credential_id = ?`);
  return {
    async add(user, cred, meta) {
      return ctx.change((now) => {
        const uid = userId(db, user);
        if (db.prepare('SELECT 1 FROM webauthn_credentials WHERE credential_id = ?').get(cred.credentialId)) {
          throw alreadyExists('this security key is already registered', 'remove it first, or register another key');
        }
        db.prepare('INSERT INTO webauthn_credentials (user_id, credential_id, public_key, counter, transports, created_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(uid, cred.credentialId, cred.publicKey, cred.counter, JSON.stringify(cred.transports), now);
        const rec = toRecord(byId.get(cred.credentialId)!);
        return { result: rec, events: [draft('admin.user.webauthn.add', meta.actor, { user, credential: cred.credentialId })] };
      });
    },
    async list(user) {
      return db.prepare<[string], Row>(`${SELECT} WHERE u.name = ? ORDER BY c.id`).all(user).map(toRecord);
    },
    async byCredentialId(credentialId) {
      const r = byId.get(credentialId);
      return r ? toRecord(r) : null;
    },
    async remove(user, id, meta) {
      ctx.change(() => {
        const uid = userId(db, user);
        const row = db.prepare<[number, number], { credential_id: string }>('SELECT credential_id FROM webauthn_credentials WHERE id = ? AND user_id = ?').get(id, uid);
        if (!row) throw notFound(`user "${user}" has no security key #${id}`, 'see the Security keys page');
        db.prepare('DELETE FROM webauthn_credentials WHERE id = ?').run(id);
        return { result: undefined, events: [draft('admin.user.webauthn.remove', meta.actor, { user, credential: row.credential_id })] };
      });
    },
    async claimCounter(credentialId, counter, now) {
      if (!Number.isInteger(counter) || counter < 0 || counter > 0xffffffff) return false;
      return claim.run(counter, now, credentialId, counter, counter).changes === 1;
    },
  };
}
