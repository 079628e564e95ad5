import type { Clock } from '../../shared/clock.js';
import type { Store } from '../types.js';
import { auditTable } from './audit.js';
import { makeCtx, openDatabase } from './db.js';
import { filesTable } from './files.js';
import { groupsTable } from './groups.js';
import { grantsTable } from './grants.js';
import { hostsTable } from './hosts.js';
import { keysTable } from './keys.js';
import { lockoutTable } from './lockout.js';
import { loginsTable } from './logins.js';
import { metaTable } from './meta.js';
import { fleetTable } from './fleet.js';
import { nodesTable } from './nodes.js';
import { killsTable, policyTable } from './policy.js';
import { recordingsTable } from './recordings.js';
import { retentionTable } from './retention.js';
import { requestsTable } from './requests.js';
import { searchTable, webSessionsTable } from './search.js';
import { sessionsTable, type SearchTuning } from './sessions.js';
import { totpTable } from './totp.js';
import { usersTable } from './users.js';
import { webauthnTable } from './webauthn.js';

/** The embedded backend: one SQLite file in WAL mode, shared by the server and the CLI processes. */
export function createSqliteStore(file: string, clock: Clock, opts: { search?: SearchTuning } = {}): Store {
  const db = openDatabase(file);
  const ctx = makeCtx(db, clock);
  return {
    users: usersTable(ctx),
    keys: keysTable(ctx),
    totp: totpTable(ctx),
    groups: groupsTable(ctx),
    hosts: hostsTable(ctx),
    grants: grantsTable(ctx),
    requests: requestsTable(ctx),
    policy: policyTable(ctx),
    kills: killsTable(ctx),
    lockout: lockoutTable(ctx),
    sessions: sessionsTable(ctx, opts.search),
    recordings: recordingsTable(ctx),
    retention: retentionTable(ctx),
    search: searchTable(ctx),
    files: filesTable(ctx),
    webSessions: webSessionsTable(ctx),
    webauthn: webauthnTable(ctx),
    audit: auditTable(ctx),
    meta: metaTable(ctx),
    fleet: fleetTable(ctx),
    nodes: nodesTable(ctx),
    logins: loginsTable(ctx),
    async batch(fn) {
      db.exec('BEGIN IMMEDIATE');
      try {
        const r = await fn();
        db.exec('COMMIT');
        return r;
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
    },
    close() { db.close(); return Promise.resolve(); },
  };
}
