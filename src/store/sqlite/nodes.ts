import { GatehouseError } from '../../shared/errors.js';
import type { NodeRecord, Store } from '../types.js';
import type { Ctx } from './db.js';

interface NodeRow {
  name: string;
  pid: number;
  host: string;
  started_at: number;
  heartbeat_at: number;
  addresses: string;
  stopped_at: number | null;
  reaped_by: string | null;
  reaped_at: number | null;
}

const toRecord = (r: NodeRow): NodeRecord => ({
  name: r.name, pid: r.pid, host: r.host, startedAt: r.started_at, heartbeatAt: r.heartbeat_at,
  addresses: JSON.parse(r.addresses) as string[], stoppedAt: r.stopped_at, reapedBy: r.reaped_by, reapedAt: r.reaped_at,
});

/** The message for a name already held by a live process (serve refuses to start with it). */
export function nameTaken(holder: NodeRecord, now: number): GatehouseError {
  const ago = Math.max(0, Math.round((now - holder.heartbeatAt) / 1000));
  return new GatehouseError('GH_DATADIR', `another gatehouse server named "${holder.name}" is running (pid ${holder.pid} on ${holder.host}, since ${new Date(holder.startedAt).toISOString()}, last heartbeat ${ago}s ago)`, {
    hint: 'give each node its own node.name (config) or GATEHOUSE_NODE_NAME, or stop the other one',
  });
}

export function nodesTable(ctx: Ctx): Store['nodes'] {
  const { db, clock } = ctx;
  const get = db.prepare<[string], NodeRow>('SELECT * FROM nodes WHERE name = ?');
  return {
    async claim(n, staleMs) {
      // IMMEDIATE: two processes claiming one name at once are serialized; one of them sees the other.
      return db.transaction(() => {
        const now = clock.now();
        const row = get.get(n.name);
        if (row && row.stopped_at === null && row.reaped_at === null && now - row.heartbeat_at < staleMs && !(row.pid === n.pid && row.host === n.host)) {
          throw nameTaken(toRecord(row), now);
        }
        db.prepare(`INSERT INTO nodes (name, pid, host, started_at, heartbeat_at, addresses) VALUES (?, ?, ?, ?, ?, ?)
          ON CONFLICT(name) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at,
          heartbeat_at = excluded.heartbeat_at, addresses = excluded.addresses, stopped_at = NULL, reaped_by = NULL, reaped_at = NULL`)
          .run(n.name, n.pid, n.host, now, now, JSON.stringify(n.addresses));
        return toRecord(get.get(n.name)!);
      }).immediate();
    },
    async heartbeat(name, pid, addresses) {
      const now = clock.now();
      const r = addresses
        ? db.prepare('UPDATE nodes SET heartbeat_at = ?, addresses = ? WHERE name = ? AND pid = ? AND stopped_at IS NULL AND reaped_at IS NULL').run(now, JSON.stringify(addresses), name, pid)
        : db.prepare('UPDATE nodes SET heartbeat_at = ? WHERE name = ? AND pid = ? AND stopped_at IS NULL AND reaped_at IS NULL').run(now, name, pid);
      return r.changes === 1;
    },
    async list() {
      return db.prepare<[], NodeRow>('SELECT * FROM nodes ORDER BY name').all().map(toRecord);
    },
    async leave(name, pid) {
      db.prepare('UPDATE nodes SET stopped_at = ? WHERE name = ? AND pid = ? AND stopped_at IS NULL').run(clock.now(), name, pid);
    },
    async reap(name, before, by) {
      const r = db.prepare('UPDATE nodes SET reaped_by = ?, reaped_at = ? WHERE name = ? AND heartbeat_at < ? AND stopped_at IS NULL AND reaped_at IS NULL')
        .run(by, clock.now(), name, before);
      return r.changes === 1;
    },
  };
}
