import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { copySqliteToPostgres } from '../../../src/store/migrate.js';
import { postgresAvailable, sharedDatabases, type SharedDatabases } from '../../helpers/postgres.js';
import { admin, tempStore } from '../../helpers/store.js';

/**
 * A CLI change committed to the SQLite store while migrate copies it would be lost with the old
 * store: the copy holds the SQLite write lock until it ends, so such a writer waits and fails.
 */
describe.skipIf(!postgresAvailable())('migrate: the SQLite store is locked for writers during the copy', () => {
  let dbs: SharedDatabases | undefined;
  afterAll(async () => { await dbs?.stop(); });

  it('a write during the copy gets SQLITE_BUSY; after it, writes go through again', async () => {
    dbs = await sharedDatabases();
    const { store, file } = tempStore();
    await store.users.add('alice', [], admin);
    await store.close();
    const url = await dbs.create();
    let during: unknown = 'not tried';
    await copySqliteToPostgres({
      sqliteFile: file, url,
      beforeCommit: async () => {
        const w = new Database(file, { timeout: 0 });
        try {
          w.prepare("INSERT INTO meta (key, value) VALUES ('test.during', '1')").run();
          during = 'written';
        } catch (err) {
          during = (err as { code?: string }).code;
        } finally { w.close(); }
      },
    });
    expect(during).toBe('SQLITE_BUSY');
    const w = new Database(file, { timeout: 0 });
    w.prepare("INSERT INTO meta (key, value) VALUES ('test.after', '1')").run();
    w.close();
  }, 180_000);
});
