import { draft, type Role } from '../../audit/events.js';
import { alreadyExists, invalid } from '../../shared/errors.js';
import type { Store, UserRecord } from '../types.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { userId } from './lookup.js';

interface UserRow {
  id: number;
  name: string;
  disabled: number;
  disabled_reason: string | null;
  has_password: number;
  totp: number;
  roles: string | null;
  groups: string | null;
  created_at: number;
  require_security_key: number;
}

const SELECT = `
  SELECT u.id, u.name, u.disabled, u.disabled_reason, u.password_hash IS NOT NULL AS has_password,
         EXISTS (SELECT 1 FROM totp t WHERE t.user_id = u.id) AS totp,
         (SELECT group_concat(role, ',') FROM (SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role)) AS roles,
         (SELECT group_concat(name, ',') FROM (SELECT g.name FROM group_members m JOIN user_groups g ON g.id = m.group_id
            WHERE m.user_id = u.id ORDER BY g.name)) AS groups,
         u.created_at, u.require_security_key
  FROM users u`;

function toRecord(r: UserRow): UserRecord {
  return {
    id: r.id,
    name: r.name,
    roles: (r.roles ? r.roles.split(',') : []) as Role[],
    disabled: r.disabled === 1,
    disabledReason: r.disabled_reason,
    hasPassword: r.has_password === 1,
    totpEnrolled: r.totp === 1,
    groups: r.groups ? r.groups.split(',') : [],
    createdAt: r.created_at,
    requireSecurityKey: r.require_security_key === 1,
  };
}

export function usersTable(ctx: Ctx): Store['users'] {
  const { db } = ctx;
  const byName = db.prepare<[string], UserRow>(`${SELECT} WHERE u.name = ?`);
  const all = db.prepare<[], UserRow>(`${SELECT} ORDER BY u.name`);
  const insertRole = db.prepare('INSERT OR IGNORE INTO user_roles (user_id, role) VALUES (?, ?)');

  return {
    async add(name, roles, meta) {
      return ctx.change((now) => {
        let id: number;
        try {
          id = Number(db.prepare('INSERT INTO users (name, created_at, updated_at) VALUES (?, ?, ?)').run(name, now, now).lastInsertRowid);
        } catch (err) {
          if (isUniqueViolation(err)) throw alreadyExists(`user "${name}" already exists`, `see it with: gatehouse user show ${name}`);
          throw err;
        }
        for (const role of roles) insertRole.run(id, role);
        return { result: toRecord(byName.get(name)!), events: [draft('admin.user.add', meta.actor, { user: name, roles })] };
      });
    },
    async get(name) {
      const r = byName.get(name);
      return r ? toRecord(r) : null;
    },
    async list() {
      return all.all().map(toRecord);
    },
    async setDisabled(name, disabled, reason, meta) {
      ctx.change((now) => {
        const id = userId(db, name);
        const cur = byName.get(name)!;
        if ((cur.disabled === 1) === disabled) throw invalid(`user "${name}" is already ${disabled ? 'disabled' : 'enabled'}`);
        db.prepare('UPDATE users SET disabled = ?, disabled_reason = ?, updated_at = ? WHERE id = ?')
          .run(disabled ? 1 : 0, disabled ? reason : null, now, id);
        const ev = disabled
          ? draft('admin.user.disable', meta.actor, { user: name, reason })
          : draft('admin.user.enable', meta.actor, { user: name });
        return { result: undefined, events: [ev] };
      });
    },
    async addRole(name, role, meta) {
      ctx.change(() => {
        const id = userId(db, name);
        if (insertRole.run(id, role).changes === 0) throw alreadyExists(`user "${name}" already has the ${role} role`);
        return { result: undefined, events: [draft('admin.user.role.add', meta.actor, { user: name, role })] };
      });
    },
    async removeRole(name, role, meta) {
      ctx.change(() => {
        const id = userId(db, name);
        if (db.prepare('DELETE FROM user_roles WHERE user_id = ? AND role = ?').run(id, role).changes === 0) {
          throw invalid(`user "${name}" does not have the ${role} role`);
        }
        return { result: undefined, events: [draft('admin.user.role.remove', meta.actor, { user: name, role })] };
      });
    },
    async setPassword(name, passwordHash, meta) {
      ctx.change((now) => {
        const id = userId(db, name);
        db.prepare('UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?').run(passwordHash, now, id);
        return { result: undefined, events: [draft('admin.user.password', meta.actor, { user: name })] };
      });
    },
    async setRequireSecurityKey(name, required, meta) {
      ctx.change((now) => {
        const id = userId(db, name);
        db.prepare('UPDATE users SET require_security_key = ?, updated_at = ? WHERE id = ?').run(required ? 1 : 0, now, id);
        return { result: undefined, events: [draft('admin.user.security_key', meta.actor, { user: name, required })] };
      });
    },
    async remove(name, meta) {
      ctx.change(() => {
        const id = userId(db, name);
        // Keys, TOTP, roles, memberships and the user's own grants go with the user (ON DELETE CASCADE);
        // sessions and audit rows keep the name as text and stay.
        db.prepare('DELETE FROM users WHERE id = ?').run(id);
        return { result: undefined, events: [draft('admin.user.remove', meta.actor, { user: name })] };
      });
    },
    async passwordHash(name) {
      return db.prepare<[string], { password_hash: string | null }>('SELECT password_hash FROM users WHERE name = ?').get(name)?.password_hash ?? null;
    },
    async anyAdmin() {
      return db.prepare("SELECT 1 FROM user_roles WHERE role = 'admin' LIMIT 1").get() !== undefined;
    },
  };
}
