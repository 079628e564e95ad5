import { draft } from '../../audit/events.js';
import { alreadyExists, notFound } from '../../shared/errors.js';
import type { GroupRecord, Store } from '../types.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { groupId, userId } from './lookup.js';

export function groupsTable(ctx: Ctx): Store['groups'] {
  const { db } = ctx;
  return {
    async add(name, meta) {
      return ctx.change(async (now) => {
        try {
          const id = (await db.one<{ id: number }>('INSERT INTO user_groups (name, created_at) VALUES ($1, $2) RETURNING id', [name, now]))!.id;
          return { result: { id, name, members: [] } as GroupRecord, events: [draft('admin.group.add', meta.actor, { group: name })] };
        } catch (err) {
          if (isUniqueViolation(err)) throw alreadyExists(`group "${name}" already exists`);
          throw err;
        }
      });
    },
    async remove(name, meta) {
      await ctx.change(async () => {
        const gid = await groupId(db, name);
        // The group's grants go with it (ON DELETE CASCADE): a grant to a group that no longer exists means nothing.
        await db.run('DELETE FROM user_groups WHERE id = $1', [gid]);
        return { result: undefined, events: [draft('admin.group.remove', meta.actor, { group: name })] };
      });
    },
    async list() {
      const rows = await db.rows<{ id: number; name: string; members: string | null }>(
        `SELECT g.id, g.name, (SELECT string_agg(u.name, ',' ORDER BY u.name) FROM group_members m JOIN users u ON u.id = m.user_id
           WHERE m.group_id = g.id) AS members FROM user_groups g ORDER BY g.name`);
      return rows.map((r) => ({ id: r.id, name: r.name, members: r.members ? r.members.split(',') : [] }));
    },
    async addMember(group, user, meta) {
      await ctx.change(async () => {
        const gid = await groupId(db, group);
        const uid = await userId(db, user);
        if ((await db.run('INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [gid, uid])) === 0) {
          throw alreadyExists(`user "${user}" is already in group "${group}"`);
        }
        return { result: undefined, events: [draft('admin.group.member.add', meta.actor, { group, user })] };
      });
    },
    async removeMember(group, user, meta) {
      await ctx.change(async () => {
        const gid = await groupId(db, group);
        const uid = await userId(db, user);
        if ((await db.run('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [gid, uid])) === 0) {
          throw notFound(`user "${user}" is not in group "${group}"`);
        }
        return { result: undefined, events: [draft('admin.group.member.remove', meta.actor, { group, user })] };
      });
    },
  };
}
