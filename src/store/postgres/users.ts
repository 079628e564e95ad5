import { draft, type Role } from '../../audit/events.js';
import { alreadyExists, invalid } from '../../shared/errors.js';
import type { Store, UserRecord } from '../types.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { userId } from './lookup.js';

interface UserRow {
  id: number;
  name: string;
  disabled: boolean;
  disabled_reason: string | null;
  has_password: boolean;
  totp: boolean;
  roles: string | null;
  groups: string | null;
  created_at: number;
  require_security_key: boolean;
}

const SELECT = `
  SELECT u.id, u.name, u.disabled, u.disabled_reason, u.password_hash IS NOT NULL AS has_password,
         EXISTS (SELECT 1 FROM totp t WHERE t.user_id = u.id) AS totp,
         (SELECT string_agg(role, ',' ORDER BY role) FROM user_roles r WHERE r.user_id = u.id) AS roles,
         (SELECT string_agg(g.name, ',' ORDER BY g.name) FROM group_members m JOIN user_groups g ON g.id = m.group_id
            WHERE m.user_id = u.id) AS groups,
         u.created_at, u.require_security_key
  FROM users u`;

const toRecord = (r: UserRow): UserRecord => ({
  id: r.id, name: r.name, roles: (r.roles ? r.roles.split(',') : []) as Role[], disabled: r.disabled,
  disabledReason: r.disabled_reason, hasPassword: r.has_password, totpEnrolled: r.totp,
  groups: r.groups ? r.groups.split(',') : [], createdAt: r.created_at, requireSecurityKey: r.require_security_key,
});

export function usersTable(ctx: Ctx): Store['users'] {
  const { db } = ctx;
  const byName = (name: string) => db.one<UserRow>(`${SELECT} WHERE u.name = $1`, [name]);
  const insertRole = (id: number, role: string) =>
    db.run('INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING', [id, role]);
  return {
    async add(name, roles, meta) {
      return ctx.change(async (now) => {
        let id: number;
        try {
          id = (await db.one<{ id: number }>('INSERT INTO users (name, created_at, updated_at) VALUES ($1, $2, $3) RETURNING id', [name, now, now]))!.id;
        } catch (err) {
          if (isUniqueViolation(err)) throw alreadyExists(`user "${name}" already exists`, `see it with: gatehouse user show ${name}`);
          throw err;
        }
        for (const role of roles) await insertRole(id, role);
        return { result: toRecord((await byName(name))!), events: [draft('admin.user.add', meta.actor, { user: name, roles })] };
      });
    },
    async get(name) {
      const r = await byName(name);
      return r ? toRecord(r) : null;
    },
    async list() {
      return (await db.rows<UserRow>(`${SELECT} ORDER BY u.name`)).map(toRecord);
    },
    async setDisabled(name, disabled, reason, meta) {
      await ctx.change(async (now) => {
        const id = await userId(db, name);
        const cur = (await db.one<{ disabled: boolean }>('SELECT disabled FROM users WHERE id = $1 FOR UPDATE', [id]))!;
        if (cur.disabled === disabled) throw invalid(`user "${name}" is already ${disabled ? 'disabled' : 'enabled'}`);
        await db.run('UPDATE users SET disabled = $1, disabled_reason = $2, updated_at = $3 WHERE id = $4', [disabled, disabled ? reason : null, now, id]);
        const ev = disabled
          ? draft('admin.user.disable', meta.actor, { user: name, reason })
          : draft('admin.user.enable', meta.actor, { user: name });
        return { result: undefined, events: [ev] };
      });
    },
    async addRole(name, role, meta) {
      await ctx.change(async () => {
        const id = await userId(db, name);
        if ((await insertRole(id, role)) === 0) throw alreadyExists(`user "${name}" already has the ${role} role`);
        return { result: undefined, events: [draft('admin.user.role.add', meta.actor, { user: name, role })] };
      });
    },
    async removeRole(name, role, meta) {
      await ctx.change(async () => {
        const id = await userId(db, name);
        if ((await db.run('DELETE FROM user_roles WHERE user_id = $1 AND role = $2', [id, role])) === 0) {
          throw invalid(`user "${name}" does not have the ${role} role`);
        }
        return { result: undefined, events: [draft('admin.user.role.remove', meta.actor, { user: name, role })] };
      });
    },
    async setPassword(name, passwordHash, meta) {
      await ctx.change(async (now) => {
        const id = await userId(db, name);
        await db.run('UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3', [passwordHash, now, id]);
        return { result: undefined, events: [draft('admin.user.password', meta.actor, { user: name })] };
      });
    },
    async setRequireSecurityKey(name, required, meta) {
      await ctx.change(async (now) => {
        const id = await userId(db, name);
        await db.run('UPDATE users SET require_security_key = $1, updated_at = $2 WHERE id = $3', [required, now, id]);
        return { result: undefined, events: [draft('admin.user.security_key', meta.actor, { user: name, required })] };
      });
    },
    async remove(name, meta) {
      await ctx.change(async () => {
        const id = await userId(db, name);
        // Keys, TOTP, roles, memberships and the user's own grants go with the user (ON DELETE CASCADE);
        // sessions and audit rows keep the name as text and stay.
        await db.run('DELETE FROM users WHERE id = $1', [id]);
        return { result: undefined, events: [draft('admin.user.remove', meta.actor, { user: name })] };
      });
    },
    async passwordHash(name) {
      return (await db.one<{ password_hash: string | null }>('SELECT password_hash FROM users WHERE name = $1', [name]))?.password_hash ?? null;
    },
    async anyAdmin() {
      return (await db.one("SELECT 1 FROM user_roles WHERE role = 'admin' LIMIT 1")) !== undefined;
    },
  };
}
