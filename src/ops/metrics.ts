import type { Store } from '../store/types.js';

/**
 * The operations metrics /metrics adds to the core ones (web/server.ts). Every name here is used by
 * config/prometheus/alerts.yml or config/grafana/dashboard.json, and a test checks that each name
 * those files use is served.
 */
export async function opsMetrics(o: { store: Store; freeBytes: () => number | null; minFreeSpace: number; uploadsPending?: () => number }): Promise<string[]> {
  const [lockouts, deleted] = await Promise.all([o.store.audit.count('auth.locked'), o.store.audit.count('recording.deleted')]);
  const free = o.freeBytes();
  return [
    '# HELP gatehouse_lockouts_total Accounts locked after repeated authentication failures.', '# TYPE gatehouse_lockouts_total counter', `gatehouse_lockouts_total ${lockouts}`,
    '# HELP gatehouse_recordings_deleted_total Recordings deleted by retention.', '# TYPE gatehouse_recordings_deleted_total counter', `gatehouse_recordings_deleted_total ${deleted}`,
    ...(free === null ? [] : ['# HELP gatehouse_recording_free_bytes Free bytes where recordings are written.', '# TYPE gatehouse_recording_free_bytes gauge', `gatehouse_recording_free_bytes ${free}`]),
    '# HELP gatehouse_recording_min_free_bytes recording.minFreeSpace: under it new sessions are refused.', '# TYPE gatehouse_recording_min_free_bytes gauge', `gatehouse_recording_min_free_bytes ${o.minFreeSpace}`,
    // Object storage: closed recordings still in the spool (uploading, or failing and retried). Always 0 with local storage.
    '# HELP gatehouse_recording_uploads_pending Closed recordings not yet confirmed in object storage (still in the spool).', '# TYPE gatehouse_recording_uploads_pending gauge', `gatehouse_recording_uploads_pending ${o.uploadsPending?.() ?? 0}`,
  ];
}
