import os from 'node:os';
import Database from 'better-sqlite3';
import { GatehouseError } from '../shared/errors.js';

/**
 * One server per node name on a data directory (cluster/lock.ts names the file): a second `serve`
 * of the same name would treat the first one's live sessions as left over from a crash and close
 * them as interrupted.
 *
 * Node has no flock, and a PID file goes stale after kill -9 (or names a reused PID), so the lock is
 * a kernel lock that dies with its process: `serve.lock` is a tiny SQLite database on which the
 * server holds a write transaction (SQLite's POSIX fcntl lock) for as long as it runs. The holder's
 * PID, host and start time are committed in it first, so a refused start can name them.
 * The file is never deleted: a new file under the same name would be a second, unrelated lock.
 */
export interface ServeLock {
  readonly file: string;
  release(): void;
}

export interface LockHolder {
  pid: number;
  host: string;
  since: number;
}

// A Database object that is garbage-collected closes its handle and drops the lock with it.
const held = new Set<Database.Database>();

function isBusy(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

function readHolder(db: Database.Database): LockHolder | undefined {
  try {
    return db.prepare<[], LockHolder>('SELECT pid, host, since FROM holder LIMIT 1').get();
  } catch {
    return undefined; // the first server ever is still creating the table
  }
}

function refuse(file: string, holder: LockHolder | undefined): GatehouseError {
  const who = holder ? `pid ${holder.pid} on ${holder.host}, running since ${new Date(holder.since).toISOString()}` : 'another process';
  return new GatehouseError('GH_DATADIR', `another gatehouse server (${who}) holds the data directory lock ${file}`, {
    hint: 'only one server of a node name may run on a data directory; stop the other one, or give this one its own node.name (or --data DIR)',
  });
}

/** Take the data directory's server lock, or throw an error that names the lock and its holder. */
export function acquireServeLock(file: string, now: number, holder: { pid: number; host: string } = { pid: process.pid, host: os.hostname() }): ServeLock {
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 2000 });
  } catch (err) {
    throw new GatehouseError('GH_DATADIR', `cannot open the lock file ${file}: ${(err as Error).message}`, {
      hint: 'check that the data directory is writable by this user', cause: err,
    });
  }
  const begin = () => {
    // No waiting for the write lock: a running server holds it for good.
    db.pragma('busy_timeout = 0');
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      if (!isBusy(err)) throw err;
      db.pragma('busy_timeout = 2000');
      throw refuse(file, readHolder(db));
    }
    db.pragma('busy_timeout = 2000');
  };
  try {
    begin();
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, host TEXT NOT NULL, since INTEGER NOT NULL)');
    db.prepare('DELETE FROM holder').run();
    db.prepare('INSERT INTO holder (pid, host, since) VALUES (?, ?, ?)').run(holder.pid, holder.host, now);
    db.exec('COMMIT');
    // Between the commit and this begin another starter may win; then it is the holder and we refuse.
    begin();
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
    throw err;
  }
  held.add(db);
  return {
    file,
    release() {
      if (!held.delete(db)) return;
      if (db.inTransaction) db.exec('ROLLBACK');
      db.close();
    },
  };
}
