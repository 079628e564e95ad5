import type { FleetFacts, FleetScanRecord } from '../../fleet/facts.js';
import type { Store } from '../types.js';
import type { Ctx } from './db.js';

interface Row {
  host_name: string; scanned_at: number; reachable: number; error: string | null; session_id: string | null; duration_ms: number; facts: string | null;
}

const toRecord = (r: Row): FleetScanRecord => ({
  host: r.host_name, scannedAt: r.scanned_at, reachable: r.reachable === 1, error: r.error, sessionId: r.session_id,
  durationMs: r.duration_ms, facts: r.facts === null ? null : (JSON.parse(r.facts) as FleetFacts),
});

/** The latest fleet scan of each host (src/fleet); a new scan replaces the row. */
export function fleetTable({ db }: Ctx): Store['fleet'] {
  return {
    async put(r) {
      db.prepare(`INSERT INTO fleet_scans (host_name, scanned_at, reachable, error, session_id, duration_ms, facts) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(host_name) DO UPDATE SET scanned_at = excluded.scanned_at, reachable = excluded.reachable, error = excluded.error,
        session_id = excluded.session_id, duration_ms = excluded.duration_ms, facts = excluded.facts`)
        .run(r.host, r.scannedAt, r.reachable ? 1 : 0, r.error, r.sessionId, r.durationMs, r.facts === null ? null : JSON.stringify(r.facts));
    },
    async get(host) {
      const r = db.prepare<[string], Row>('SELECT * FROM fleet_scans WHERE host_name = ?').get(host);
      return r ? toRecord(r) : null;
    },
    async list() {
      return db.prepare<[], Row>('SELECT * FROM fleet_scans ORDER BY host_name').all().map(toRecord);
    },
  };
}
