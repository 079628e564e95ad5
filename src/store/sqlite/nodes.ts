import { randomBytes } from 'node:crypto';
import { draft } from '../../audit/events.js';
import { GatehouseError } from '../../shared/errors.js';
import type { NodeRecord, Store } from '../types.js';
import type { Ctx } from './db.js';

export interface NodeRow {
  name: string;
  pid: number;
  host: string;
  started_at: number;
  heartbeat_at: number;
  addresses: string;
  stopped_at: number | null;
  reaped_by: string | null;
  reaped_at: number | null;
  incarnation: string;
  reap_done_at: number | null;
}

export const toNodeRecord = (r: NodeRow): NodeRecord => ({
  name: r.name, pid: r.pid, host: r.host, startedAt: r.started_at, heartbeatAt: r.heartbeat_at,
  addresses: JSON.parse(r.addresses) as string[], stoppedAt: r.stopped_at, reapedBy: r.reaped_by, reapedAt: r.reaped_at,
  incarnation: r.incarnation, reapDoneAt: r.reap_done_at,
});

/** A node generation's id: random, so two machines with the same host name, PID and node name still differ. */
export const newIncarnation = (): string => randomBytes(12).toString('base64url');

/** The message for a name already held by a live process (serve refuses to start with it). */
export function nameTaken(holder: NodeRecord, now: number): GatehouseError {
  const ago = Math.max(0, Math.round((now - holder.heartbeatAt) / 1000));
  return new GatehouseError('GH_DATADIR', `another gatehouse server named "${holder.name}" is running (pid ${holder.pid} on ${holder.host}, since ${new Date(holder.startedAt).toISOString()}, last heartbeat ${ago}s ago)`, {
    hint: 'give each node its own node.name (config) or GATEHOUSE_NODE_NAME, or stop the other one',
  });
}

/** Whether a claim may not take `row`: its holder is running (fresh heartbeat) and not proven dead. */
export function heldByAnother(row: NodeRecord, now: number, staleMs: number, provenDead?: string): boolean {
  if (row.stoppedAt !== null || row.reapedAt !== null) return false;
  if (provenDead !== undefined && provenDead !== '' && row.incarnation === provenDead) return false;
  return now - row.heartbeatAt < staleMs;
}

/** The open sessions of one generation of a node (rows from before generations carry none). */
const GENERATION = 'node = ? AND ended_at IS NULL AND (node_incarnation = ? OR node_incarnation IS NULL)';

/**
 * Server nodes and their heartbeats. Times come from the injected clock: nodes sharing a SQLite
 * file share one machine (or one volume between machines whose clocks NTP keeps together), unlike
 * PostgreSQL's nodes, which use the database's clock (postgres/nodes.ts).
 */
export function nodesTable(ctx: Ctx): Store['nodes'] {
  const { db, clock } = ctx;
  const get = db.prepare<[string], NodeRow>('SELECT * FROM nodes WHERE name = ?');
  return {
    async claim(n, staleMs, provenDead) {
      // IMMEDIATE: two processes claiming one name at once are serialized; one of them sees the other.
      return db.transaction(() => {
        const now = clock.now();
        const row = get.get(n.name);
        if (row && heldByAnother(toNodeRecord(row), now, staleMs, provenDead)) throw nameTaken(toNodeRecord(row), now);
        db.prepare(`INSERT INTO nodes (name, pid, host, started_at, heartbeat_at, addresses, incarnation) VALUES (?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT(name) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at,
          heartbeat_at = excluded.heartbeat_at, addresses = excluded.addresses, incarnation = excluded.incarnation,
          stopped_at = NULL, reaped_by = NULL, reaped_at = NULL, reap_done_at = NULL`)
          .run(n.name, n.pid, n.host, now, now, JSON.stringify(n.addresses), newIncarnation());
        return toNodeRecord(get.get(n.name)!);
      }).immediate();
    },
    async heartbeat(name, incarnation, addresses) {
      const now = clock.now();
      const r = addresses
        ? db.prepare('UPDATE nodes SET heartbeat_at = ?, addresses = ? WHERE name = ? AND incarnation = ? AND stopped_at IS NULL AND reaped_at IS NULL').run(now, JSON.stringify(addresses), name, incarnation)
        : db.prepare('UPDATE nodes SET heartbeat_at = ? WHERE name = ? AND incarnation = ? AND stopped_at IS NULL AND reaped_at IS NULL').run(now, name, incarnation);
      return r.changes === 1;
    },
    async list() {
      return db.prepare<[], NodeRow>('SELECT * FROM nodes ORDER BY name').all().map(toNodeRecord);
    },
    async now() {
      return clock.now();
    },
    async leave(name, incarnation) {
      db.prepare('UPDATE nodes SET stopped_at = ? WHERE name = ? AND incarnation = ? AND stopped_at IS NULL').run(clock.now(), name, incarnation);
    },
    async reap(name, deadAfterMs, by) {
      const now = clock.now();
      const r = db.prepare<[string, number, string, number], { incarnation: string }>(`UPDATE nodes SET reaped_by = ?, reaped_at = ?
        WHERE name = ? AND heartbeat_at < ? AND stopped_at IS NULL AND reaped_at IS NULL RETURNING incarnation`)
        .get(by, now, name, now - deadAfterMs);
      return r?.incarnation ?? null;
    },
    async orphans(name, incarnation) {
      return db.prepare<[string, string], { id: string }>(`SELECT id FROM sessions WHERE ${GENERATION} ORDER BY started_at`).all(name, incarnation).map((r) => r.id);
    },
    async finishReap(name, incarnation, by, recordings) {
      return ctx.change((now) => {
        const marked = db.prepare('UPDATE nodes SET reap_done_at = ? WHERE name = ? AND incarnation = ? AND reaped_at IS NOT NULL AND reap_done_at IS NULL')
          .run(now, name, incarnation).changes === 1;
        const ids = db.prepare<[string, string], { id: string }>(`SELECT id FROM sessions WHERE ${GENERATION}`).all(name, incarnation).map((r) => r.id);
        // Finished by another already, and nothing of that generation left open: nothing to say.
        if (!marked && ids.length === 0) return { result: null, events: [] };
        db.prepare(`UPDATE channels SET ended_at = ? WHERE ended_at IS NULL AND session_id IN (SELECT id FROM sessions WHERE ${GENERATION})`).run(now, name, incarnation);
        db.prepare(`UPDATE sessions SET ended_at = ?, end_reason = 'interrupted', status = 'interrupted' WHERE ${GENERATION}`).run(now, name, incarnation);
        const row = get.get(name);
        const lastHeartbeat = new Date(row?.incarnation === incarnation ? row.heartbeat_at : now).toISOString();
        return {
          result: ids,
          events: [draft('node.reaped', 'system', { node: name, by: (row?.incarnation === incarnation ? row.reaped_by : null) ?? by, lastHeartbeat, sessions: ids, recordings })],
        };
      });
    },
    async prune() {
      // Workers (NAME/wK) are never named again once gone: their rows are dropped when nothing of
      // theirs is left open. Named nodes keep their row (a handful, and `gatehouse nodes` shows them).
      return db.prepare<[], { name: string }>(`DELETE FROM nodes WHERE instr(name, '/') > 0 AND (stopped_at IS NOT NULL OR reap_done_at IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.node = nodes.name AND s.ended_at IS NULL) RETURNING name`).all().map((r) => r.name);
    },
  };
}
