import { draft, type AuditDraft } from '../../audit/events.js';
import { isoTime } from '../../shared/clock.js';
import { notFound } from '../../shared/errors.js';
import type { GrantRecord, NewGrant, Store } from '../types.js';
import { toGrantRecord as toRecord } from '../rows.js';
import type { Ctx, Db } from './db.js';
import { groupId, hostId, userId } from './lookup.js';
import { revokeRequestOfGrant } from './requests.js';

interface GrantRow {
  id: number; user_name: string | null; group_name: string | null; host_name: string | null; host_group: string | null;
  all_hosts: boolean; logins: string; rights: string; until: number | null; reason: string; created_by: string;
  created_at: number; source: string | null;
}

const SELECT = `SELECT g.id, u.name AS user_name, ug.name AS group_name, h.name AS host_name, g.host_group, g.all_hosts,
    g.logins, g.rights, g.until, g.reason, g.created_by, g.created_at, g.source
  FROM grants g
  LEFT JOIN users u ON u.id = g.user_id
  LEFT JOIN user_groups ug ON ug.id = g.group_id
  LEFT JOIN hosts h ON h.id = g.host_id`;

/** The one way a grant row is written, with its admin.grant.add event (inside the caller's transaction). */
export async function insertGrant(db: Db, grant: NewGrant, actor: string, now: number): Promise<{ record: GrantRecord; event: AuditDraft }> {
  const uid = grant.who.kind === 'user' ? await userId(db, grant.who.name) : null;
  const gid = grant.who.kind === 'group' ? await groupId(db, grant.who.name) : null;
  const hid = grant.where.kind === 'host' ? await hostId(db, grant.where.name) : null;
  const id = (await db.one<{ id: number }>(
    `INSERT INTO grants (user_id, group_id, host_id, host_group, all_hosts, logins, rights, until, reason, created_by, created_at, source)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
    [uid, gid, hid, grant.where.kind === 'host-group' ? grant.where.name : null, grant.where.kind === 'all',
      JSON.stringify(grant.logins), JSON.stringify(grant.rights), grant.until, grant.reason, actor, now, grant.source ?? null],
  ))!.id;
  const event = draft('admin.grant.add', actor, {
    grant: id, who: grant.who, where: grant.where, logins: grant.logins, rights: grant.rights,
    until: grant.until === null ? null : isoTime(grant.until), reason: grant.reason,
    ...(grant.source !== undefined ? { source: grant.source } : {}),
  });
  return { record: toRecord((await db.one<GrantRow>(`${SELECT} WHERE g.id = $1`, [id]))!), event };
}

/** The one way a grant row is removed, with its admin.grant.remove event (null: no such grant). */
export async function deleteGrant(db: Db, id: number, actor: string): Promise<AuditDraft | null> {
  const r = await db.one<GrantRow>(`${SELECT} WHERE g.id = $1`, [id]);
  if (!r) return null;
  await db.run('DELETE FROM grants WHERE id = $1', [id]);
  const g = toRecord(r);
  return draft('admin.grant.remove', actor, { grant: id, who: g.who, where: g.where });
}

export function grantsTable(ctx: Ctx): Store['grants'] {
  const { db } = ctx;
  return {
    async add(grant, meta) {
      return ctx.change(async (now) => {
        const { record, event } = await insertGrant(db, grant, meta.actor, now);
        return { result: record, events: [event] };
      });
    },
    async get(id) {
      if (!Number.isSafeInteger(id)) return null;
      const r = await db.one<GrantRow>(`${SELECT} WHERE g.id = $1`, [id]);
      return r ? toRecord(r) : null;
    },
    async list() {
      return (await db.rows<GrantRow>(`${SELECT} ORDER BY g.id`)).map(toRecord);
    },
    async remove(id, meta) {
      await ctx.change(async (now) => {
        const ev = Number.isSafeInteger(id) ? await deleteGrant(db, id, meta.actor) : null;
        if (!ev) throw notFound(`no grant #${id}`, 'list grants with: gatehouse grant list');
        return { result: undefined, events: [ev, ...await revokeRequestOfGrant(db, id, meta.actor, now)] };
      });
    },
  };
}
