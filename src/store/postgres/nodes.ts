import { draft } from '../../audit/events.js';
import type { Store } from '../types.js';
import { heldByAnother, nameTaken, newIncarnation, toNodeRecord, type NodeRow } from '../sqlite/nodes.js';
import { LOCK, type Ctx } from './db.js';

/**
 * The database's clock in epoch ms. Heartbeats and staleness are measured on it, never on a node's
 * own clock: nodes on several machines whose clocks disagree (no NTP, a VM resumed with an old
 * clock) cannot take a live node for dead, or keep a dead one looking alive.
 */
const DB_NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** The open sessions of one generation of a node (rows from before generations carry none). */
const GENERATION = 'node = $1 AND ended_at IS NULL AND (node_incarnation = $2 OR node_incarnation IS NULL)';

/** Server nodes and their heartbeats (the same semantics as sqlite/nodes.ts, on the database's clock). */
export function nodesTable(ctx: Ctx): Store['nodes'] {
  const { db } = ctx;
  const get = (name: string) => db.one<NodeRow>('SELECT * FROM nodes WHERE name = $1', [name]);
  const dbNow = async () => (await db.one<{ now: number }>(`SELECT ${DB_NOW} AS now`))!.now;
  return {
    async claim(n, staleMs, provenDead) {
      return ctx.tx(async () => {
        // Two processes claiming one name at once (a row may not exist yet to lock) take turns.
        await db.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK.nodes, n.name]);
        const now = await dbNow();
        const row = await get(n.name);
        if (row && heldByAnother(toNodeRecord(row), now, staleMs, provenDead)) throw nameTaken(toNodeRecord(row), now);
        await db.run(`INSERT INTO nodes (name, pid, host, started_at, heartbeat_at, addresses, incarnation) VALUES ($1, $2, $3, $4, $4, $5, $6)
          ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at,
          heartbeat_at = excluded.heartbeat_at, addresses = excluded.addresses, incarnation = excluded.incarnation,
          stopped_at = NULL, reaped_by = NULL, reaped_at = NULL, reap_done_at = NULL`,
        [n.name, n.pid, n.host, now, JSON.stringify(n.addresses), newIncarnation()]);
        return toNodeRecord((await get(n.name))!);
      });
    },
    async heartbeat(name, incarnation, addresses) {
      const n = addresses
        ? await db.run(`UPDATE nodes SET heartbeat_at = ${DB_NOW}, addresses = $1 WHERE name = $2 AND incarnation = $3 AND stopped_at IS NULL AND reaped_at IS NULL`, [JSON.stringify(addresses), name, incarnation])
        : await db.run(`UPDATE nodes SET heartbeat_at = ${DB_NOW} WHERE name = $1 AND incarnation = $2 AND stopped_at IS NULL AND reaped_at IS NULL`, [name, incarnation]);
      return n === 1;
    },
    async list() {
      return (await db.rows<NodeRow>('SELECT * FROM nodes ORDER BY name')).map(toNodeRecord);
    },
    now: dbNow,
    async leave(name, incarnation) {
      await db.run(`UPDATE nodes SET stopped_at = ${DB_NOW} WHERE name = $1 AND incarnation = $2 AND stopped_at IS NULL`, [name, incarnation]);
    },
    async reap(name, deadAfterMs, by) {
      // One conditional UPDATE: of several surviving nodes, exactly one takes a dead node over.
      const r = await db.one<{ incarnation: string }>(`UPDATE nodes SET reaped_by = $1, reaped_at = ${DB_NOW}
        WHERE name = $2 AND heartbeat_at < ${DB_NOW} - $3 AND stopped_at IS NULL AND reaped_at IS NULL RETURNING incarnation`, [by, name, deadAfterMs]);
      return r?.incarnation ?? null;
    },
    async orphans(name, incarnation) {
      return (await db.rows<{ id: string }>(`SELECT id FROM sessions WHERE ${GENERATION} ORDER BY started_at`, [name, incarnation])).map((r) => r.id);
    },
    async finishReap(name, incarnation, by, recordings) {
      return ctx.change(async (now) => {
        // The row lock of this UPDATE makes a second finisher wait, then find it done.
        const marked = (await db.run(`UPDATE nodes SET reap_done_at = ${DB_NOW} WHERE name = $1 AND incarnation = $2 AND reaped_at IS NOT NULL AND reap_done_at IS NULL`,
          [name, incarnation])) === 1;
        await db.run(`UPDATE channels SET ended_at = $3 WHERE ended_at IS NULL AND session_id IN (SELECT id FROM sessions WHERE ${GENERATION})`, [name, incarnation, now]);
        const ids = (await db.rows<{ id: string }>(`UPDATE sessions SET ended_at = $3, end_reason = 'interrupted', status = 'interrupted' WHERE ${GENERATION} RETURNING id`,
          [name, incarnation, now])).map((r) => r.id);
        if (!marked && ids.length === 0) return { result: null, events: [] };
        const row = await get(name);
        const same = row?.incarnation === incarnation;
        return {
          result: ids,
          events: [draft('node.reaped', 'system', {
            node: name, by: (same ? row.reaped_by : null) ?? by, lastHeartbeat: new Date(same ? row.heartbeat_at : now).toISOString(), sessions: ids, recordings,
          })],
        };
      });
    },
    async prune() {
      return (await db.rows<{ name: string }>(`DELETE FROM nodes WHERE strpos(name, '/') > 0 AND (stopped_at IS NOT NULL OR reap_done_at IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.node = nodes.name AND s.ended_at IS NULL) RETURNING name`)).map((r) => r.name);
    },
  };
}
