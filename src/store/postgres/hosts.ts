import { draft } from '../../audit/events.js';
import { alreadyExists, invalid } from '../../shared/errors.js';
import type { HostRecord, Store, TargetAuthMode } from '../types.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { hostId } from './lookup.js';

interface HostRow {
  id: number; name: string; address: string; port: number; host_key: string | null; enabled: boolean;
  groups: string | null; created_at: number; auth: TargetAuthMode;
}

const SELECT = `SELECT h.id, h.name, h.address, h.port, h.host_key, h.enabled, h.created_at, h.auth,
  (SELECT string_agg(host_group, ',' ORDER BY host_group) FROM host_group_members g WHERE g.host_id = h.id) AS groups
  FROM hosts h`;

const toRecord = (r: HostRow): HostRecord => ({
  id: r.id, name: r.name, address: r.address, port: r.port, hostKey: r.host_key, enabled: r.enabled,
  groups: r.groups ? r.groups.split(',') : [], createdAt: r.created_at, auth: r.auth,
});

export function hostsTable(ctx: Ctx): Store['hosts'] {
  const { db } = ctx;
  const byName = (name: string) => db.one<HostRow>(`${SELECT} WHERE h.name = $1`, [name]);
  return {
    async add(host, meta) {
      return ctx.change(async (now) => {
        let id: number;
        try {
          id = (await db.one<{ id: number }>(
            'INSERT INTO hosts (name, address, port, host_key, enabled, created_at, updated_at, auth) VALUES ($1, $2, $3, $4, true, $5, $5, $6) RETURNING id',
            [host.name, host.address, host.port, host.hostKey, now, host.auth ?? 'key'],
          ))!.id;
        } catch (err) {
          if (isUniqueViolation(err)) throw alreadyExists(`host "${host.name}" already exists`, `see it with: gatehouse host show ${host.name}`);
          throw err;
        }
        for (const g of host.groups) await db.run('INSERT INTO host_group_members (host_id, host_group) VALUES ($1, $2) ON CONFLICT DO NOTHING', [id, g]);
        const ev = draft('admin.host.add', meta.actor, {
          host: host.name, address: host.address, port: host.port, groups: host.groups, hostKeyFingerprint: host.hostKeyFingerprint,
          ...(host.auth === 'cert' ? { auth: host.auth } : {}),
        });
        return { result: toRecord((await byName(host.name))!), events: [ev] };
      });
    },
    async get(name) {
      const r = await byName(name);
      return r ? toRecord(r) : null;
    },
    async list() {
      return (await db.rows<HostRow>(`${SELECT} ORDER BY h.name`)).map(toRecord);
    },
    async setEnabled(name, enabled, meta) {
      await ctx.change(async (now) => {
        const id = await hostId(db, name);
        const cur = (await db.one<{ enabled: boolean }>('SELECT enabled FROM hosts WHERE id = $1 FOR UPDATE', [id]))!;
        if (cur.enabled === enabled) throw invalid(`host "${name}" is already ${enabled ? 'enabled' : 'disabled'}`);
        await db.run('UPDATE hosts SET enabled = $1, updated_at = $2 WHERE id = $3', [enabled, now, id]);
        const ev = enabled ? draft('admin.host.enable', meta.actor, { host: name }) : draft('admin.host.disable', meta.actor, { host: name });
        return { result: undefined, events: [ev] };
      });
    },
    async pinKey(name, hostKey, fingerprint, previous, meta) {
      await ctx.change(async (now) => {
        const id = await hostId(db, name);
        await db.run('UPDATE hosts SET host_key = $1, updated_at = $2 WHERE id = $3', [hostKey, now, id]);
        return { result: undefined, events: [draft('admin.host.trust', meta.actor, { host: name, fingerprint, previous })] };
      });
    },
    async setAuth(name, auth, meta) {
      await ctx.change(async (now) => {
        const id = await hostId(db, name);
        const previous = (await db.one<{ auth: TargetAuthMode }>('SELECT auth FROM hosts WHERE id = $1 FOR UPDATE', [id]))!.auth;
        if (previous === auth) throw invalid(`host "${name}" already uses --auth ${auth}`);
        await db.run('UPDATE hosts SET auth = $1, updated_at = $2 WHERE id = $3', [auth, now, id]);
        return { result: undefined, events: [draft('admin.host.auth', meta.actor, { host: name, auth, previous })] };
      });
    },
    async remove(name, meta) {
      await ctx.change(async () => {
        const id = await hostId(db, name);
        await db.run('DELETE FROM hosts WHERE id = $1', [id]);
        return { result: undefined, events: [draft('admin.host.remove', meta.actor, { host: name })] };
      });
    },
  };
}
