import type { Config } from '../config/schema.js';
import { preparePrivateFile, type DataDir } from '../datadir/datadir.js';
import type { Clock } from '../shared/clock.js';
import { redactUrl } from './postgres/redact.js';
import { createSqliteStore } from './sqlite/index.js';
import type { Store } from './types.js';

/**
 * The one place that picks the backend: `config.store` is `sqlite` (the file in the data directory,
 * the embedded default) or a PostgreSQL URL shared by several nodes (env GATEHOUSE_STORE).
 */
export async function openStore(o: { config: Pick<Config, 'store'>; dataDir: Pick<DataDir, 'paths'>; clock: Clock }): Promise<Store> {
  if (o.config.store === 'sqlite') {
    preparePrivateFile(o.dataDir.paths.db);
    return createSqliteStore(o.dataDir.paths.db, o.clock);
  }
  // Loaded only here: pg and the PostgreSQL table modules cost every SQLite run (each CLI call) start-up time.
  const { createPostgresStore } = await import('./postgres/index.js');
  return createPostgresStore(o.config.store, o.clock);
}

/** How to name the store in messages and logs: never with a password. */
export function describeStore(store: string): string {
  return store === 'sqlite' ? 'sqlite' : redactUrl(store);
}
