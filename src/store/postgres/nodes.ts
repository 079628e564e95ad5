import type { NodeRecord, Store } from '../types.js';
import { nameTaken } from '../sqlite/nodes.js';
import { LOCK, type Ctx } from './db.js';

interface NodeRow {
  name: string; pid: number; host: string; started_at: number; heartbeat_at: number; addresses: string;
  stopped_at: number | null; reaped_by: string | null; reaped_at: number | null;
}

const toRecord = (r: NodeRow): NodeRecord => ({
  name: r.name, pid: r.pid, host: r.host, startedAt: r.started_at, heartbeatAt: r.heartbeat_at,
  addresses: JSON.parse(r.addresses) as string[], stoppedAt: r.stopped_at, reapedBy: r.reaped_by, reapedAt: r.reaped_at,
});

/** Server nodes and their heartbeats (the same semantics as sqlite/nodes.ts). */
export function nodesTable(ctx: Ctx): Store['nodes'] {
  const { db, clock } = ctx;
  const get = (name: string) => db.one<NodeRow>('SELECT * FROM nodes WHERE name = $1', [name]);
  return {
    async claim(n, staleMs) {
      return ctx.tx(async () => {
        // Two processes claiming one name at once (a row may not exist yet to lock) take turns.
        await db.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK.nodes, n.name]);
        const now = clock.now();
        const row = await get(n.name);
        if (row && row.stopped_at === null && row.reaped_at === null && now - row.heartbeat_at < staleMs && !(row.pid === n.pid && row.host === n.host)) {
          throw nameTaken(toRecord(row), now);
        }
        await db.run(`INSERT INTO nodes (name, pid, host, started_at, heartbeat_at, addresses) VALUES ($1, $2, $3, $4, $4, $5)
          ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at,
          heartbeat_at = excluded.heartbeat_at, addresses = excluded.addresses, stopped_at = NULL, reaped_by = NULL, reaped_at = NULL`,
        [n.name, n.pid, n.host, now, JSON.stringify(n.addresses)]);
        return toRecord((await get(n.name))!);
      });
    },
    async heartbeat(name, pid, addresses) {
      const now = clock.now();
      const n = addresses
        ? await db.run('UPDATE nodes SET heartbeat_at = $1, addresses = $2 WHERE name = $3 AND pid = $4 AND stopped_at IS NULL AND reaped_at IS NULL', [now, JSON.stringify(addresses), name, pid])
        : await db.run('UPDATE nodes SET heartbeat_at = $1 WHERE name = $2 AND pid = $3 AND stopped_at IS NULL AND reaped_at IS NULL', [now, name, pid]);
      return n === 1;
    },
    async list() {
      return (await db.rows<NodeRow>('SELECT * FROM nodes ORDER BY name')).map(toRecord);
    },
    async leave(name, pid) {
      await db.run('UPDATE nodes SET stopped_at = $1 WHERE name = $2 AND pid = $3 AND stopped_at IS NULL', [clock.now(), name, pid]);
    },
    async reap(name, before, by) {
      // One conditional UPDATE: of several surviving nodes, exactly one takes a dead node over.
      return (await db.run('UPDATE nodes SET reaped_by = $1, reaped_at = $2 WHERE name = $3 AND heartbeat_at < $4 AND stopped_at IS NULL AND reaped_at IS NULL',
        [by, clock.now(), name, before])) === 1;
    },
  };
}
