import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe } from 'vitest';
import { ManualClock } from '../../../src/shared/clock.js';
import { createPostgresStore } from '../../../src/store/postgres/index.js';
import { PG_DEFAULT_TUNING, type PgSearchTuning } from '../../../src/store/postgres/sessions.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import { DEFAULT_TUNING, type SearchTuning } from '../../../src/store/sqlite/sessions.js';
import type { Store } from '../../../src/store/types.js';
import { tempDir } from '../../helpers/cli.js';
import { postgresAvailable, sharedDatabases, startPostgres, type Postgres, type SharedDatabases } from '../../helpers/postgres.js';
import { T0 } from '../../helpers/store.js';

export type Backend = 'sqlite' | 'postgres';

/** One fresh, empty store of the backend under test, and how to reach the same data again. */
export interface Made {
  store: Store;
  clock: ManualClock;
  backend: Backend;
  /** SQLite: the database file (for checks only SQLite has, such as its query plans). */
  file?: string;
  /** PostgreSQL: the database's URL. */
  url?: string;
  /** Another store object on the same data (another process or node), with its own clock and tuning. */
  reopen(opts?: { clock?: ManualClock; search?: Partial<SearchTuning & PgSearchTuning> }): Promise<Store>;
  /** Raw SQL on the same data, outside the store (parameters as $1, $2, … on both backends). */
  sql<R = Record<string, unknown>>(query: string, args?: unknown[]): Promise<R[]>;
}
export type MakeStore = (opts?: { search?: Partial<SearchTuning & PgSearchTuning> }) => Promise<Made>;

/**
 * The store contract runs once per backend: `body` gets a `make` for fresh stores. SQLite: a new file
 * per store. PostgreSQL: the run's shared cluster (sharedCluster), a fresh database per store, copied
 * from the file's migrated template (CREATE DATABASE … TEMPLATE).
 * Without the postgresql package the PostgreSQL half is skipped, except in CI (CI=true), where it fails.
 */
export function forEachBackend(name: string, body: (make: MakeStore, backend: Backend) => void): void {
  describe(`${name} [sqlite]`, () => {
    const open: Store[] = [];
    afterAll(async () => { for (const s of open.splice(0)) await s.close(); });
    body(async (opts = {}) => {
      const file = path.join(tempDir(), 'gatehouse.db');
      const clock = new ManualClock(T0);
      const store = createSqliteStore(file, clock, opts.search ? { search: { ...sqliteTuning, ...opts.search } } : {});
      open.push(store);
      return {
        store, clock, backend: 'sqlite', file,
        async reopen(o = {}) {
          const s = createSqliteStore(file, o.clock ?? new ManualClock(clock.now()), o.search ? { search: { ...sqliteTuning, ...o.search } } : {});
          open.push(s);
          return s;
        },
        async sql<R>(query: string, args: unknown[] = []) {
          const db = new Database(file);
          try {
            const stmt = db.prepare(query.replace(/\$\d+/g, '?'));
            return (stmt.reader ? stmt.all(...args) : (stmt.run(...args), [])) as R[];
          } finally { db.close(); }
        },
      };
    }, 'sqlite');
  });

  describe.skipIf(!postgresAvailable())(`${name} [postgres]`, () => {
    const cluster = sharedCluster();
    body(async (opts = {}) => {
      const url = await cluster.freshDatabase();
      const clock = new ManualClock(T0);
      const store = await cluster.track(createPostgresStore(url, clock, opts.search ? { search: { ...pgTuning, ...opts.search } } : {}));
      return {
        store, clock, backend: 'postgres', url,
        reopen: async (o = {}) => cluster.track(createPostgresStore(url, o.clock ?? new ManualClock(clock.now()), o.search ? { search: { ...pgTuning, ...o.search } } : {})),
        async sql<R>(query: string, args: unknown[] = []) {
          const c = new pg.Client({ connectionString: url });
          await c.connect();
          try { return (await c.query(query, args)).rows as R[]; } finally { await c.end(); }
        },
      };
    }, 'postgres');
  });
}

const sqliteTuning: SearchTuning = DEFAULT_TUNING;
const pgTuning: PgSearchTuning = PG_DEFAULT_TUNING;

/**
 * PostgreSQL for the calling test file: databases of its own on the run's shared cluster
 * (test/global-setup.ts; dropped after its last test), with a migrated template database that fresh
 * databases are copied from. `own: true` starts a cluster for this file alone (started before its
 * first test, stopped after its last): for files that stop or kill PostgreSQL (server()).
 */
export function sharedCluster(opts: { own?: boolean } = {}): { url(): string; freshDatabase(): Promise<string>; track(s: Promise<Store>): Promise<Store>; server(): Postgres } {
  let server: Postgres | undefined;
  let dbs: SharedDatabases | undefined;
  let template = '';
  let n = 0;
  const open: Store[] = [];
  beforeAll(async () => {
    let url: string;
    if (opts.own) {
      server = await startPostgres();
      url = server.urlOf('gatehouse');
    } else {
      dbs = await sharedDatabases();
      url = await dbs.create();
    }
    template = new URL(url).pathname.slice(1);
    // Migrate once into the template; a fresh database per test is then a file copy.
    const tmpl = await createPostgresStore(url, new ManualClock(T0));
    await tmpl.close();
  }, 240_000); // may wait for the run's PostgreSQL to come up (bounded at 180 s)
  afterAll(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
    await server?.stop();
    await dbs?.stop();
  }, 120_000);
  return {
    url: () => (server ? server.url : dbs!.urlOf(template)),
    server: () => {
      if (!server) throw new Error('this file uses the run\'s shared PostgreSQL: sharedCluster({ own: true }) for a cluster it may stop or kill');
      return server;
    },
    async freshDatabase() {
      if (dbs) return dbs.create({ template });
      const name = `t${++n}`;
      const c = new pg.Client({ connectionString: server!.urlOf('postgres') });
      await c.connect();
      try { await c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`); } finally { await c.end(); }
      return server!.urlOf(name);
    },
    async track(s) {
      const store = await s;
      open.push(store);
      return store;
    },
  };
}
