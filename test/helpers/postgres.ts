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
export async function startPostgres(): Promise<Postgres> {
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
      '-c full_page_writes=off', '-c max_connections=100', '-c shared_buffers=32MB',
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
