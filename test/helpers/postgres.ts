import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './proc.js';

const run = promisify(execFile);

/** The Debian package's binaries (any version; the newest wins), or null when it is not installed. */
export function postgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try { versions = fs.readdirSync(root); } catch { return null; }
  const found = versions
    .filter((v) => /^\d+$/.test(v) && fs.existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return found.length ? path.join(root, found[0]!, 'bin') : null;
}

/**
 * Whether PostgreSQL tests can run here. Outside CI a machine without the package skips them; in CI
 * a missing package is a failure (scripts/test.sh installs it), never a silent skip.
 */
export function postgresAvailable(): boolean {
  if (postgresBin() !== null) return true;
  if (process.env.CI === 'true') throw new Error('PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): scripts/test.sh installs the postgresql package');
  return false;
}

export interface Postgres {
  /** postgres://gh@127.0.0.1:PORT/gatehouse (trust auth on loopback: no password). */
  url: string;
  /** A URL for another database of the same cluster. */
  urlOf(db: string): string;
  /** pg_ctl stop -m fast, then the cluster's directory is removed. */
  stop(): Promise<void>;
  /** pg_ctl stop -m immediate: PostgreSQL went away (the directory stays until stop()). */
  kill(): Promise<void>;
  /** Start it again after kill() (same port, same data): PostgreSQL came back. */
  restart(): Promise<void>;
}

const live = new Set<{ bin: string; dir: string }>();
// A test file that dies half-way must not leave a postmaster behind (stopped by its data directory).
process.on('exit', () => {
  for (const c of live) {
    try { execFileSync('runuser', ['-u', 'postgres', '--', path.join(c.bin, 'pg_ctl'), '-D', path.join(c.dir, 'db'), '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore' }); } catch { /* not running */ }
    try { fs.rmSync(c.dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});

/**
 * The `postgres` OS user must reach the cluster's directory, which lives in the run's private temp
 * root (so the teardown sees a postmaster left running: its command line names the directory).
 * Directories on the way get the search bit for others; nothing becomes listable or writable.
 */
function traversable(dir: string): void {
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const st = fs.statSync(d);
    if ((st.mode & 0o001) === 0 && st.uid === process.getuid?.()) fs.chmodSync(d, (st.mode & 0o7777) | 0o001);
    if (d === path.dirname(d)) break;
  }
}

/**
 * A throw-away PostgreSQL cluster: initdb (trust auth, user gh) and pg_ctl as the `postgres` OS user,
 * listening on 127.0.0.1 on a free port with its socket in its own directory, and one database
 * `gatehouse`. Durability is off (fsync, synchronous_commit): nothing here must survive a crash of
 * the machine, and the tests run on two shared cores.
 */
export async function startPostgres(settings: { maxConnections?: number } = {}): Promise<Postgres> {
  const bin = postgresBin();
  if (bin === null) throw new Error('PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-pg-'));
  const entry = { bin, dir };
  live.add(entry);
  const as = (cmd: string, args: string[]) => run('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { timeout: 120_000 });
  const data = path.join(dir, 'db');
  let running = false;
  const pgStop = async (mode: 'fast' | 'immediate') => {
    if (!running) return;
    await as('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']).catch(async (err: Error) => {
      // Already stopped: fine. Anything else is worth seeing.
      const st = await as('pg_ctl', ['-D', data, 'status']).catch(() => null);
      if (st !== null) throw err;
    });
    running = false;
  };
  try {
    traversable(dir);
    fs.chownSync(dir, uidOf('postgres'), gidOf('postgres'));
    fs.chmodSync(dir, 0o700);
    await as('initdb', ['-D', data, '-A', 'trust', '-U', 'gh', '--no-sync', '-E', 'UTF8', '--locale', 'C.UTF-8']);
    const port = await freePort();
    const opts = [
      `-p ${port}`, `-k ${dir}`, '-c listen_addresses=127.0.0.1', '-c fsync=off', '-c synchronous_commit=off',
      '-c full_page_writes=off', `-c max_connections=${settings.maxConnections ?? 100}`, '-c shared_buffers=32MB',
      // Two shared cores: no parallel query workers (nor their /dev/shm segments, small in containers).
      '-c max_parallel_workers_per_gather=0',
    ].join(' ');
    const pgStart = async () => {
      running = true;
      await as('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-w', '-t', '60', '-o', opts, 'start']);
    };
    await pgStart();
    await as('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'gh', 'gatehouse']);
    const urlOf = (db: string) => `postgres://gh@127.0.0.1:${port}/${db}`;
    return {
      url: urlOf('gatehouse'),
      urlOf,
      async kill() { await pgStop('immediate'); },
      async restart() { if (!running) await pgStart(); },
      async stop() {
        try { await pgStop('fast'); } finally {
          fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
          live.delete(entry);
        }
      },
    };
  } catch (err) {
    const log = (() => { try { return fs.readFileSync(path.join(dir, 'log'), 'utf8').slice(-2000); } catch { return ''; } })();
    await pgStop('immediate').catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    live.delete(entry);
    throw new Error(`could not start PostgreSQL: ${(err as Error).message}${log ? `\n${log}` : ''}`);
  }
}

function idOf(flag: '-u' | '-g', name: string): number {
  return Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
}
const uidOf = (name: string) => idOf('-u', name);
const gidOf = (name: string) => idOf('-g', name);

/**
 * The run's one PostgreSQL cluster (test/global-setup.ts starts it when the first file asks and stops
 * it at the end of the run): an initdb costs seconds of CPU, and a dozen files each made their own.
 * Files that need one wait here for it; each gets databases of its own (sharedDatabases()).
 * Where test/global-setup.ts did not run (another config), a file gets a cluster of its own.
 */
export const SHARED_PG_ENV = 'GATEHOUSE_TEST_PG_READY';

/** What global-setup writes to the file named by SHARED_PG_ENV once the cluster is up (or failed). */
export interface SharedPgReady { admin?: string; error?: string }

export interface SharedDatabases {
  /** A new database of this file: empty (template0), or a copy of a template database. */
  create(opts?: { template?: string }): Promise<string>;
  /** The URL of a database of the cluster by name (e.g. `postgres` for admin statements). */
  urlOf(db: string): string;
  /** Drops this file's databases (shared cluster) or stops its own cluster. */
  stop(): Promise<void>;
  /** Whether this is the run's shared cluster (which a test must never stop or kill). */
  shared: boolean;
}

async function sharedAdminUrl(): Promise<string | null> {
  const file = process.env[SHARED_PG_ENV];
  if (!file) return null;
  // Ask test/global-setup.ts to start it (once per run; it watches for this file).
  fs.writeFileSync(`${file}.want`, '');
  // Bounded: the background initdb takes seconds, more on a loaded machine, never minutes.
  const until = Date.now() + 180_000;
  for (;;) {
    let ready: SharedPgReady | null = null;
    try { ready = JSON.parse(fs.readFileSync(file, 'utf8')) as SharedPgReady; } catch { /* not written yet */ }
    if (ready?.admin) return ready.admin;
    if (ready?.error) throw new Error(`the run's shared PostgreSQL did not start: ${ready.error}`);
    if (Date.now() > until) throw new Error('gave up waiting for the run\'s shared PostgreSQL (test/global-setup.ts)');
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
}

/**
 * Databases of the calling file on the run's shared cluster (names unique to this process), dropped
 * by stop(); or, without test/global-setup.ts, a cluster of its own. A file that must stop or kill
 * PostgreSQL (store loss tests) uses startPostgres() instead.
 */
export async function sharedDatabases(): Promise<SharedDatabases> {
  const admin = await sharedAdminUrl();
  if (admin === null) {
    const own = await startPostgres();
    let n = 0;
    return {
      shared: false,
      urlOf: own.urlOf,
      async create(o = {}) {
        const name = `d${++n}`;
        await adminQuery(own.urlOf('postgres'), `CREATE DATABASE ${name} TEMPLATE ${o.template ?? 'template0'}`);
        return own.urlOf(name);
      },
      stop: () => own.stop(),
    };
  }
  const urlOf = (db: string) => { const u = new URL(admin); u.pathname = `/${db}`; return u.toString(); };
  const prefix = `f${process.pid}_${Math.random().toString(36).slice(2, 8)}_`;
  const made: string[] = [];
  return {
    shared: true,
    urlOf,
    async create(o = {}) {
      const name = `${prefix}${made.length + 1}`;
      made.push(name);
      // A template whose last connection just closed can still have its backend exiting ("source
      // database is being accessed by other users"): a few bounded retries.
      for (let attempt = 1; ; attempt++) {
        try {
          await adminQuery(urlOf('postgres'), `CREATE DATABASE ${name} TEMPLATE ${o.template ?? 'template0'}`);
          return urlOf(name);
        } catch (err) {
          if (attempt >= 20 || !/being accessed by other users/.test((err as Error).message)) throw err;
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
        }
      }
    },
    async stop() {
      for (const name of made.splice(0)) await adminQuery(urlOf('postgres'), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}
