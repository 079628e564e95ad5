import { draft } from '../../audit/events.js';
import { alreadyExists, invalid } from '../../shared/errors.js';
import type { HostRecord, Store, TargetAuthMode } from '../types.js';
import { isUniqueViolation, type Ctx } from './db.js';
import { hostId } from './lookup.js';

interface HostRow {
  id: number;
  name: string;
  address: string;
  port: number;
  host_key: string | null;
  enabled: number;
  groups: string | null;
  created_at: number;
  auth: TargetAuthMode;
}

const SELECT = `SELECT h.id, h.name, h.address, h.port, h.host_key, h.enabled, h.created_at, h.auth,
  (SELECT group_concat(host_group, ',') FROM (SELECT host_group FROM host_group_members g WHERE g.host_id = h.id ORDER BY host_group)) AS groups
  FROM hosts h`;

const toRecord = (r: HostRow): HostRecord => ({
  id: r.id, name: r.name, address: r.address, port: r.port, hostKey: r.host_key, enabled: r.enabled === 1,
  groups: r.groups ? r.groups.split(',') : [], createdAt: r.created_at, auth: r.auth,
});

export function hostsTable(ctx: Ctx): Store['hosts'] {
  const { db } = ctx;
  const byName = db.prepare<[string], HostRow>(`${SELECT} WHERE h.name = ?`);
  return {
    async add(host, meta) {
      return ctx.change((now) => {
        let id: number;
        try {
          id = Number(
            db.prepare('INSERT INTO hosts (name, address, port, host_key, enabled, created_at, updated_at, auth) VALUES (?, ?, ?, ?, 1, ?, ?, ?)')
              .run(host.name, host.address, host.port, host.hostKey, now, now, host.auth ?? 'key').lastInsertRowid,
          );
        } catch (err) {
          if (isUniqueViolation(err)) throw alreadyExists(`host "${host.name}" already exists`, `see it with: gatehouse host show ${host.name}`);
          throw err;
        }
        const addGroup = db.prepare('INSERT OR IGNORE INTO host_group_members (host_id, host_group) VALUES (?, ?)');
        for (const g of host.groups) addGroup.run(id, g);
        const ev = draft('admin.host.add', meta.actor, {
          host: host.name, address: host.address, port: host.port, groups: host.groups, hostKeyFingerprint: host.hostKeyFingerprint,
          ...(host.auth === 'cert' ? { auth: host.auth } : {}),
        });
        return { result: toRecord(byName.get(host.name)!), events: [ev] };
      });
    },
    async get(name) {
      const r = byName.get(name);
      return r ? toRecord(r) : null;
    },
    async list() {
      return db.prepare<[], HostRow>(`${SELECT} ORDER BY h.name`).all().map(toRecord);
    },
    async setEnabled(name, enabled, meta) {
      ctx.change((now) => {
        const id = hostId(db, name);
        const cur = byName.get(name)!;
        if ((cur.enabled === 1) === enabled) throw invalid(`host "${name}" is already ${enabled ? 'enabled' : 'disabled'}`);
        db.prepare('UPDATE hosts SET enabled = ?, updated_at = ? WHERE id = ?').run(enabled ? 1 : 0, now, id);
        const ev = enabled ? draft('admin.host.enable', meta.actor, { host: name }) : draft('admin.host.disable', meta.actor, { host: name });
        return { result: undefined, events: [ev] };
      });
    },
    async pinKey(name, hostKey, fingerprint, previous, meta) {
      ctx.change((now) => {
        const id = hostId(db, name);
        db.prepare('UPDATE hosts SET host_key = ?, updated_at = ? WHERE id = ?').run(hostKey, now, id);
        return { result: undefined, events: [draft('admin.host.trust', meta.actor, { host: name, fingerprint, previous })] };
      });
    },
    async setAuth(name, auth, meta) {
      ctx.change((now) => {
        const id = hostId(db, name);
        const previous = byName.get(name)!.auth;
        if (previous === auth) throw invalid(`host "${name}" already uses --auth ${auth}`);
        db.prepare('UPDATE hosts SET auth = ?, updated_at = ? WHERE id = ?').run(auth, now, id);
        return { result: undefined, events: [draft('admin.host.auth', meta.actor, { host: name, auth, previous })] };
      });
    },
    async remove(name, meta) {
      ctx.change(() => {
        const id = hostId(db, name);
        db.prepare('DELETE FROM hosts WHERE id = ?').run(id);
        return { result: undefined, events: [draft('admin.host.remove', meta.actor, { host: name })] };
      });
    },
  };
}
