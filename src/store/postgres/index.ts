import type { Clock } from '../../shared/clock.js';
import type { Store } from '../types.js';
import { auditTable } from './audit.js';
import { changesFeed } from './changes.js';
import { createPool, makeCtx, migrate, storeError } from './db.js';
import { filesTable } from './files.js';
import { grantsTable } from './grants.js';
import { groupsTable } from './groups.js';
import { hostsTable } from './hosts.js';
import { keysTable } from './keys.js';
import { lockoutTable } from './lockout.js';
import { loginsTable } from './logins.js';
import { metaTable } from './meta.js';
import { fleetTable } from './fleet.js';
import { nodesTable } from './nodes.js';
import { killsTable, policyTable } from './policy.js';
import { recordingsTable } from './recordings.js';
import { requestsTable } from './requests.js';
import { retentionTable } from './retention.js';
import { searchTable, webSessionsTable } from './search.js';
import { sessionsTable, type PgSearchTuning } from './sessions.js';
import { totpTable } from './totp.js';
import { usersTable } from './users.js';
import { webauthnTable } from './webauthn.js';

/**
 * The store for several nodes: one PostgreSQL database shared by every server and CLI. Migrates on
 * open (under an advisory lock). `url` may hold a password: it never appears in an error or a log.
 */
export async function createPostgresStore(url: string, clock: Clock, opts: { search?: PgSearchTuning } = {}): Promise<Store> {
  const pool = createPool(url);
  try {
    await migrate(pool);
  } catch (err) {
    await pool.end().catch(() => undefined);
    if ((err as { code?: string }).code === 'GH_STORE') throw err;
    throw storeError('cannot open the PostgreSQL store', err, url);
  }
  const ctx = makeCtx(pool, clock);
  const changes = changesFeed(url);
  let closing: Promise<void> | null = null;
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
    changes: { subscribe: (fn) => changes.subscribe(fn) },
    // Every store call made during fn (in its async context) runs on one client, in one transaction.
    batch: (fn) => ctx.tx(fn),
    close() {
      closing ??= (async () => {
        await changes.close();
        await pool.end();
      })();
      return closing;
    },
  };
}
