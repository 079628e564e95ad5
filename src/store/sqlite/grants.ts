import { draft, type AuditDraft } from '../../audit/events.js';
import { isoTime } from '../../shared/clock.js';
import { notFound } from '../../shared/errors.js';
import type { GrantRecord, NewGrant, Store } from '../types.js';
import { toGrantRecord as toRecord } from '../rows.js';
import type { Ctx, DB } from './db.js';
import { groupId, hostId, userId } from './lookup.js';
import { revokeRequestOfGrant } from './requests.js';

interface GrantRow {
  id: number;
  user_name: string | null;
  group_name: string | null;
  host_name: string | null;
  host_group: string | null;
  all_hosts: number;
  logins: string;
  rights: string;
  until: number | null;
  reason: string;
  created_by: string;
  created_at: number;
  source: string | null;
}

const SELECT = `SELECT g.id, u.name AS user_name, ug.name AS group_name, h.name AS host_name, g.host_group, g.all_hosts,
    g.logins, g.rights, g.until, g.reason, g.created_by, g.created_at, g.source
  FROM grants g
  LEFT JOIN users u ON u.id = g.user_id
  LEFT JOIN user_groups ug ON ug.id = g.group_id
  LEFT JOIN hosts h ON h.id = g.host_id`;

/**
 * The one way a grant row is written, with its admin.grant.add event: `grant add` and an approved
 * access request (auth/requests.ts) both come here, inside their own transaction.
 */
export function insertGrant(db: DB, grant: NewGrant, actor: string, now: number): { record: GrantRecord; event: AuditDraft } {
  const uid = grant.who.kind === 'user' ? userId(db, grant.who.name) : null;
  const gid = grant.who.kind === 'group' ? groupId(db, grant.who.name) : null;
  const hid = grant.where.kind === 'host' ? hostId(db, grant.where.name) : null;
  const id = Number(
    db.prepare(
      `INSERT INTO grants (user_id, group_id, host_id, host_group, all_hosts, logins, rights, until, reason, created_by, created_at, source)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      uid, gid, hid, grant.where.kind === 'host-group' ? grant.where.name : null, grant.where.kind === 'all' ? 1 : 0,
      JSON.stringify(grant.logins), JSON.stringify(grant.rights), grant.until, grant.reason, actor, now, grant.source ?? null,
    ).lastInsertRowid,
  );
  const event = draft('admin.grant.add', actor, {
    grant: id, who: grant.who, where: grant.where, logins: grant.logins, rights: grant.rights,
    until: grant.until === null ? null : isoTime(grant.until), reason: grant.reason,
    ...(grant.source !== undefined ? { source: grant.source } : {}),
  });
  return { record: toRecord(db.prepare<[number], GrantRow>(`${SELECT} WHERE g.id = ?`).get(id)!), event };
}

/** The one way a grant row is removed, with its admin.grant.remove event (null: no such grant). */
export function deleteGrant(db: DB, id: number, actor: string): AuditDraft | null {
  const r = db.prepare<[number], GrantRow>(`${SELECT} WHERE g.id = ?`).get(id);
  if (!r) return null;
  db.prepare('DELETE FROM grants WHERE id = ?').run(id);
  const g = toRecord(r);
  return draft('admin.grant.remove', actor, { grant: id, who: g.who, where: g.where });
}

export function grantsTable(ctx: Ctx): Store['grants'] {
  const { db } = ctx;
  const byId = db.prepare<[number], GrantRow>(`${SELECT} WHERE g.id = ?`);
  return {
    async add(grant, meta) {
      return ctx.change((now) => {
        const { record, event } = insertGrant(db, grant, meta.actor, now);
        return { result: record, events: [event] };
      });
    },
    async get(id) {
      const r = byId.get(id);
      return r ? toRecord(r) : null;
    },
    async list() {
      return db.prepare<[], GrantRow>(`${SELECT} ORDER BY g.id`).all().map(toRecord);
    },
    async remove(id, meta) {
      ctx.change((now) => {
        const ev = deleteGrant(db, id, meta.actor);
        if (!ev) throw notFound(`no grant #${id}`, 'list grants with: gatehouse grant list');
        return { result: undefined, events: [ev, ...revokeRequestOfGrant(db, id, meta.actor, now)] };
      });
    },
  };
}
