import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { ROOT } from './cli.js';
import { freePort } from './proc.js';

/**
 * A local S3-compatible server for the tests: s3rver (npm, a test server, not a production store),
 * run as a child process on 127.0.0.1 with a free port, serving from its own temp directory; stopped
 * by PID and its directory removed by stop(). s3rver checks request signatures against the
 * credentials S3RVER / S3RVER, which the tests pass the way production does: AWS_* variables.
 */
export interface S3Server {
  endpoint: string;
  bucket: string;
  port: number;
  /** Environment for a process that talks to it (the standard AWS variables, nothing else). */
  env: Record<string, string>;
  /** A client for the test itself (to look into the bucket, or to tamper with it as an attacker). */
  client(): S3Client;
  /** The YAML for recording.storage.s3. */
  config(prefix?: string): string;
  stop(): Promise<void>;
}

export const S3_ENV = {
  AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1',
  // No instance-metadata lookups, no profile files from the machine running the tests.
  AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
};

// CommonJS, run with the repository as cwd so that require finds s3rver.
const SCRIPT = `
const S3rver = require('s3rver');
const [port, dir, buckets] = process.argv.slice(1);
new S3rver({ address: '127.0.0.1', port: Number(port), directory: dir, silent: true, configureBuckets: buckets ? buckets.split(',').map((name) => ({ name })) : [] })
  .run()
  .then((a) => console.log('s3rver listening on ' + a.port), (e) => { console.error(e); process.exit(1); });
process.on('SIGTERM', () => process.exit(0));
`;

const children = new Set<ChildProcess>();
// A test file that fails half-way must not leave a server behind: stop it by PID.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
    try { process.kill(c.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

export async function startS3(opts: { bucket?: string; createBucket?: boolean; port?: number; dir?: string } = {}): Promise<S3Server> {
  const bucket = opts.bucket ?? 'recordings';
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-s3-'));
  const port = opts.port ?? await freePort();
  const child = spawn(process.execPath, ['-e', SCRIPT, String(port), dir, opts.createBucket === false ? '' : bucket], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const started = new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`s3rver did not start in 20 s: ${out}`)); }, 20_000);
    const on = (d: Buffer) => { out += d.toString(); if (/s3rver listening/.test(out)) { clearTimeout(timer); resolve(); } };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`s3rver exited (${code}): ${out}`)); });
  });
  try {
    await started;
  } catch (err) {
    await stopChild(child);
    if (opts.dir === undefined) fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const clients: S3Client[] = [];
  return {
    endpoint, bucket, port, env: { ...S3_ENV },
    client() {
      const c = new S3Client({
        endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
      });
      clients.push(c);
      return c;
    },
    config(prefix = '') {
      return `recording:\n  storage:\n    s3:\n      endpoint: ${endpoint}\n      bucket: ${bucket}\n      region: us-east-1\n      prefix: "${prefix}"\n      forcePathStyle: true\n`;
    },
    async stop() {
      for (const c of clients.splice(0)) c.destroy();
      await stopChild(child);
      if (opts.dir === undefined) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL'); }, 5_000);
  await exited;
  clearTimeout(timer);
}
