import type { FleetFacts, FleetScanRecord } from '../../fleet/facts.js';
import type { Store } from '../types.js';
import type { Ctx } from './db.js';

interface Row {
  host_name: string; scanned_at: number; reachable: boolean; error: string | null; session_id: string | null; duration_ms: number; facts: string | null;
}

const toRecord = (r: Row): FleetScanRecord => ({
  host: r.host_name, scannedAt: r.scanned_at, reachable: r.reachable, error: r.error, sessionId: r.session_id,
  durationMs: r.duration_ms, facts: r.facts === null ? null : (JSON.parse(r.facts) as FleetFacts),
});

/** The latest fleet scan of each host (as sqlite/fleet.ts); a new scan replaces the row. */
export function fleetTable({ db }: Ctx): Store['fleet'] {
  return {
    async put(r) {
      await db.run(`INSERT INTO fleet_scans (host_name, scanned_at, reachable, error, session_id, duration_ms, facts) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (host_name) DO UPDATE SET scanned_at = excluded.scanned_at, reachable = excluded.reachable, error = excluded.error,
        session_id = excluded.session_id, duration_ms = excluded.duration_ms, facts = excluded.facts`,
      [r.host, r.scannedAt, r.reachable, r.error, r.sessionId, r.durationMs, r.facts === null ? null : JSON.stringify(r.facts)]);
    },
    async get(host) {
      const r = await db.one<Row>('SELECT * FROM fleet_scans WHERE host_name = $1', [host]);
      return r ? toRecord(r) : null;
    },
    async list() {
      return (await db.rows<Row>('SELECT * FROM fleet_scans ORDER BY host_name')).map(toRecord);
    },
  };
}
