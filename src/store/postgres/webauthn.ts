import { draft } from '../../audit/events.js';
import { alreadyExists, notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import { toWebauthnRecord as toRecord, type WebauthnRow as Row } from '../rows.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { userId } from './lookup.js';

const SELECT = `SELECT c.id, c.user_id, u.name, c.credential_id, c.public_key, c.counter, c.transports, c.created_at, c.last_used_at
  FROM webauthn_credentials c JOIN users u ON u.id = c.user_id`;

export function webauthnTable(ctx: Ctx): Store['webauthn'] {
  const { db } = ctx;
  const byId = (credentialId: string) => db.one<Row>(`${SELECT} WHERE c.credential_id = $1`, [credentialId]);
  const taken = () => alreadyExists('this security key is already registered', 'remove it first, or register another key');
  return {
    async add(user, cred, meta) {
      return ctx.change(async (now) => {
        const uid = await userId(db, user);
        if (await db.one('SELECT 1 FROM webauthn_credentials WHERE credential_id = $1', [cred.credentialId])) throw taken();
        try {
          await db.run('INSERT INTO webauthn_credentials (user_id, credential_id, public_key, counter, transports, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
            [uid, cred.credentialId, cred.publicKey, cred.counter, JSON.stringify(cred.transports), now]);
        } catch (err) {
          if (isUniqueViolation(err)) throw taken();
          throw err;
        }
        const rec = toRecord((await byId(cred.credentialId))!);
        return { result: rec, events: [draft('admin.user.webauthn.add', meta.actor, { user, credential: cred.credentialId })] };
      });
    },
    async list(user) {
      return (await db.rows<Row>(`${SELECT} WHERE u.name = $1 ORDER BY c.id`, [user])).map(toRecord);
    },
    async byCredentialId(credentialId) {
      const r = await byId(credentialId);
      return r ? toRecord(r) : null;
    },
    async remove(user, id, meta) {
      await ctx.change(async () => {
        const uid = await userId(db, user);
        const row = Number.isSafeInteger(id)
          ? await db.one<{ credential_id: string }>('SELECT credential_id FROM webauthn_credentials WHERE id = $1 AND user_id = $2', [id, uid])
          : undefined;
        if (!row) throw notFound(`user "${user}" has no security key #${id}`, 'see the Security keys page');
        await db.run('DELETE FROM webauthn_credentials WHERE id = $1', [id]);
        return { result: undefined, events: [draft('admin.user.webauthn.remove', meta.actor, { user, credential: row.credential_id })] };
      });
    },
    async claimCounter(credentialId, counter, now) {
      if (!Number.isInteger(counter) || counter < 0 || counter > 0xffffffff) return false;
      // One conditional UPDATE: of two logins racing with the same counter (on any nodes) exactly one wins.
      return (await db.run(`UPDATE webauthn_credentials SET counter = $1, last_used_at = $2
        WHERE credential_id = $3 AND (counter < $1 OR (counter = 0 AND $1 = 0))`, [counter, now, credentialId])) === 1;
    },
  };
}
