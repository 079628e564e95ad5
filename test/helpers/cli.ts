import { spawnSync } from 'node:child_process';
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

/** Run the real gatehouse binary (the built dist) as a separate process. */
export function gh(dataDir: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args, '--data', dataDir], {
    input: opts.input ?? '',
    encoding: 'utf8',
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '', ...opts.env },
    timeout: 30_000,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Like gh() but fails the test with the output when the command does not succeed. */
export function ghOk(dataDir: string, args: string[], opts: { input?: string } = {}): string {
  const r = gh(dataDir, args, opts);
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
