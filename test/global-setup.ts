import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { postgresAvailable, SHARED_PG_ENV, startPostgres, type Postgres } from './helpers/postgres.js';

/**
 * The whole test run gets one temporary root, handed to every worker and every process they start
 * as TMPDIR (sshd, gatehouse, ssh, tmux sockets, chromium profiles). test/setup.ts removes each
 * file's directories as the file ends; the teardown here stops any process still running from the
 * root (by PID) and removes the root, also after failures, so nothing is left in the machine's
 * temp directory run after run.
 */
export default function setup(): () => Promise<void> {
  const outer = os.tmpdir();
  const root = fs.mkdtempSync(path.join(outer, 'gh-run-'));
  process.env.TMPDIR = root;
  const pg = sharedPostgres(root);
  return async () => {
    await pg.stop();
    process.env.TMPDIR = outer;
    const running = processesUsing(root);
    for (const pid of running) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    // Each file removes its own directories as it ends (test/setup.ts): anything here was missed.
    // Tool caches (tsx compiles the offload worker's TypeScript under vitest) are not a test's to
    // remove; they go with the root like everything else.
    const files = fs.readdirSync(root).filter((f) => !TOOL_CACHES.test(f));
    fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    const problems = [
      ...running.map((pid) => `process ${pid} was still running (killed)`),
      ...files.map((f) => `${f} was left in the temp directory (removed)`),
    ];
    if (problems.length === 0) return;
    console.warn(`test teardown: tests left things behind:\n  ${problems.join('\n  ')}`);
    // scripts/test.sh turns this into a failed run.
    const report = process.env.GATEHOUSE_TEST_LEFTOVERS;
    if (report) fs.writeFileSync(report, problems.join('\n') + '\n');
  };
}

/**
 * One PostgreSQL cluster for the whole run, started on demand: the first file that needs one asks
 * for it (test/helpers/postgres.ts sharedDatabases writes the `.want` file next to the ready file)
 * and every such file then makes databases of its own in it, instead of an initdb each. A run
 * without such a file starts nothing. Without the postgresql package nothing starts
 * (postgresAvailable() throws in CI, where the files that need it then fail).
 */
function sharedPostgres(root: string): { stop(): Promise<void> } {
  let available = false;
  try { available = postgresAvailable(); } catch { /* CI without the package: the files that need it fail */ }
  if (!available) return { stop: async () => undefined };
  const ready = path.join(root, 'shared-postgres.json');
  const want = `${ready}.want`;
  process.env[SHARED_PG_ENV] = ready;
  const write = (v: object) => {
    fs.writeFileSync(`${ready}.tmp`, JSON.stringify(v));
    fs.renameSync(`${ready}.tmp`, ready);
  };
  let started: Promise<Postgres | null> | null = null;
  // Watching a file in this (otherwise idle) process: a stat every 200 ms until someone asks.
  const watch = setInterval(() => {
    if (started !== null || !fs.existsSync(want)) return;
    clearInterval(watch);
    // Two files at a time, each store a pool and each e2e file two gatehouse nodes: room for all.
    started = startPostgres({ maxConnections: 300 }).then(
      (server) => { write({ admin: server.urlOf('postgres') }); return server; },
      (err: Error) => { write({ error: err.message }); return null; },
    );
  }, 200);
  return {
    async stop() {
      clearInterval(watch);
      const server = await started;
      await server?.stop();
      for (const f of [ready, want]) fs.rmSync(f, { force: true });
      delete process.env[SHARED_PG_ENV];
    },
  };
}

const TOOL_CACHES = /^(tsx-\d+|node-compile-cache|v8-compile-cache(-\d+)?)$/;

/** PIDs whose command line or working directory is under dir (Linux /proc; none elsewhere). */
function processesUsing(dir: string): number[] {
  if (!fs.existsSync('/proc')) return [];
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const cwd = fs.readlinkSync(`/proc/${name}/cwd`);
      if (cmdline.includes(dir) || cwd.startsWith(dir)) pids.push(Number(name));
    } catch { /* exited meanwhile, or not ours to read */ }
  }
  return pids;
}
