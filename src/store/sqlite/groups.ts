import { draft } from '../../audit/events.js';
import { alreadyExists, notFound } from '../../shared/errors.js';
import type { GroupRecord, Store } from '../types.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { groupId, userId } from './lookup.js';

export function groupsTable(ctx: Ctx): Store['groups'] {
  const { db } = ctx;
  const list = (): GroupRecord[] =>
    db
      .prepare<[], { id: number; name: string; members: string | null }>(
        `SELECT g.id, g.name, (SELECT group_concat(name, ',') FROM (SELECT u.name FROM group_members m JOIN users u ON u.id = m.user_id
           WHERE m.group_id = g.id ORDER BY u.name)) AS members FROM user_groups g ORDER BY g.name`,
      )
      .all()
      .map((r) => ({ id: r.id, name: r.name, members: r.members ? r.members.split(',') : [] }));
  return {
    async add(name, meta) {
      return ctx.change((now) => {
        try {
          const id = Number(db.prepare('INSERT INTO user_groups (name, created_at) VALUES (?, ?)').run(name, now).lastInsertRowid);
          return { result: { id, name, members: [] }, events: [draft('admin.group.add', meta.actor, { group: name })] };
        } catch (err) {
          if (isUniqueViolation(err)) throw alreadyExists(`group "${name}" already exists`);
          throw err;
        }
      });
    },
    async remove(name, meta) {
      ctx.change(() => {
        const gid = groupId(db, name);
        // The group's grants go with it (ON DELETE CASCADE): a grant to a group that no longer exists means nothing.
        db.prepare('DELETE FROM user_groups WHERE id = ?').run(gid);
        return { result: undefined, events: [draft('admin.group.remove', meta.actor, { group: name })] };
      });
    },
    async list() {
      return list();
    },
    async addMember(group, user, meta) {
      ctx.change(() => {
        const gid = groupId(db, group);
        const uid = userId(db, user);
        if (db.prepare('INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)').run(gid, uid).changes === 0) {
          throw alreadyExists(`user "${user}" is already in group "${group}"`);
        }
        return { result: undefined, events: [draft('admin.group.member.add', meta.actor, { group, user })] };
      });
    },
    async removeMember(group, user, meta) {
      ctx.change(() => {
        const gid = groupId(db, group);
        const uid = userId(db, user);
        if (db.prepare('DELETE FROM group_members WHERE group_id = ? AND user_id = ?').run(gid, uid).changes === 0) {
          throw notFound(`user "${user}" is not in group "${group}"`);
        }
        return { result: undefined, events: [draft('admin.group.member.remove', meta.actor, { group, user })] };
      });
    },
  };
}
