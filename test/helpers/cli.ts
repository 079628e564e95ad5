import { execFile, spawnSync } from 'node:child_process';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin', 'gatehouse.js');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of every CLI call: the test's own, without a data dir or config taken from it. */
function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '', ...extra };
}

/** Run the real gatehouse binary (the built dist) as a separate process. */
export function gh(dataDir: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args, '--data', dataDir], {
    input: opts.input ?? '',
    encoding: 'utf8',
    cwd: opts.cwd ?? ROOT,
    env: cliEnv(opts.env),
    timeout: 30_000,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * gh() without blocking the test's event loop: for a command that talks to a peer living in the
 * test's own process (an ssh2 target, an HTTP stub), which spawnSync would freeze.
 */
export function ghAsync(dataDir: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, ...args, '--data', dataDir], {
      encoding: 'utf8', cwd: ROOT, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024,
      env: cliEnv(opts.env),
    }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

let cliWorker: Worker | null = null;

/**
 * The CLI's run() in this process (a worker thread that keeps the built code loaded), called
 * synchronously like spawnSync: the test's thread waits on a shared flag. A spawned CLI costs about
 * half a second of CPU to start (node, zod, ssh2, better-sqlite3), and the e2e files make a few
 * thousand such calls to set up users, keys and grants: in a CI run that was most of the
 * machine's CPU. The real binary stays under test through gh(), which always spawns it, and
 * test/e2e/cli.test.ts. GATEHOUSE_TEST_CLI=spawn makes ghOk spawn too.
 *
 * As main() does, the call runs under umask 077 (the test's thread is blocked meanwhile; a file
 * operation it had already handed to libuv's threads would get the stricter mask, never a looser one).
 * The real binary exits only when nothing keeps its event loop alive (main() sets exitCode): a
 * command that leaves a ref'd handle (a pool, a socket, a timer) fails here as it would hang there.
 */
function ghInProcess(dataDir: string, args: string[], input: string): CliResult {
  if (!cliWorker) {
    const w = new Worker(new URL('./cli-worker.mjs', import.meta.url));
    // A worker that died between two calls is replaced at the next one instead of waited for.
    w.on('error', () => undefined).on('exit', () => { if (cliWorker === w) cliWorker = null; });
    w.unref();
    cliWorker = w;
  }
  const flag = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const env = cliEnv();
  const umask = process.umask(0o077);
  let waited: string;
  try {
    cliWorker.postMessage({ args: [...args, '--data', dataDir], env, input, flag, port: port2 }, [port2]);
    waited = Atomics.wait(new Int32Array(flag), 0, 0, 30_000);
  } finally {
    process.umask(umask);
  }
  const reply = receiveMessageOnPort(port1)?.message as (CliResult & { error?: undefined }) | { error: string } | undefined;
  port1.close();
  if (waited === 'timed-out' || !reply) {
    void cliWorker.terminate();
    cliWorker = null;
    throw new Error(`gatehouse ${args.join(' ')}: ${waited === 'timed-out' ? 'no answer from the in-process CLI in 30 s' : 'the in-process CLI stopped'}`);
  }
  if (reply.error !== undefined) throw new Error(`gatehouse ${args.join(' ')} threw: ${reply.error}`);
  return reply;
}

/** Like gh() but fails the test with the output when the command does not succeed; in-process (see ghInProcess). */
export function ghOk(dataDir: string, args: string[], opts: { input?: string } = {}): string {
  const r = process.env.GATEHOUSE_TEST_CLI === 'spawn' ? gh(dataDir, args, opts) : ghInProcess(dataDir, args, opts.input ?? '');
  if (r.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

export function ghJson<T = unknown>(dataDir: string, args: string[]): T {
  return JSON.parse(ghOk(dataDir, [...args, '--json'])) as T;
}

const made: string[] = [];

/** A fresh private directory, removed with everything in it when the test file ends (test/setup.ts). */
export function tempDir(prefix = 'gatehouse-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Remove every directory tempDir() made in this test file (after its processes are stopped). */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

export function fixtureKey(name: string): string {
  return fs.readFileSync(path.join(FIXTURES, 'keys', `${name}.pub`), 'utf8');
}
