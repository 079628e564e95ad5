import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { gh, ROOT, tempDir } from '../../helpers/cli.js';

// The e2e suites run the CLI hundreds of times: what a plain command loads is start-up time paid on
// every call. The built binary runs with test/helpers/import-trace.mjs preloaded, which lists every
// module the process loaded (ES modules through a load hook, CommonJS ones from the require cache).
const TRACER = pathToFileURL(path.join(ROOT, 'test', 'helpers', 'import-trace.mjs')).href;

function traced(args: string[], data: string): { code: number; stderr: string; packages: Set<string> } {
  const trace = path.join(tempDir('gatehouse-trace-'), 'modules.txt');
  const r = gh(data, args, { env: { GATEHOUSE_TEST_IMPORT_TRACE: trace, NODE_OPTIONS: `--import=${TRACER}` } });
  const lines = fs.readFileSync(trace, 'utf8').split('\n');
  // Sanity: the tracer saw the CLI itself, so an empty list never passes for a lean one.
  expect(lines.some((l) => l.endsWith('/dist/cli/main.js'))).toBe(true);
  const packages = new Set<string>();
  for (const l of lines) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(l);
    if (m) packages.add(m[1]!);
  }
  return { code: r.code, stderr: r.stderr, packages };
}

/** Loaded only by the commands (or configurations) that use them. */
const HEAVY = ['pg', 'pg-pool', 'fastify', 'pino', 'pino-pretty', 'qrcode', 'yaml', 'otplib', '@aws-sdk/client-s3', '@aws-sdk/lib-storage', '@simplewebauthn/server'];

describe('CLI start-up loads only what the command needs', () => {
  it('user list on the SQLite store loads neither pg, fastify, pino-pretty nor the other optional packages', () => {
    const data = tempDir();
    const r = traced(['user', 'list'], data);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // It did open the store (so the check is of a real run, not of an early exit).
    expect(r.packages.has('better-sqlite3')).toBe(true);
    expect(HEAVY.filter((p) => r.packages.has(p))).toEqual([]);
  });

  it('the tracer sees a lazily required package: a config file loads yaml', () => {
    const data = tempDir();
    const file = path.join(tempDir(), 'gatehouse.yaml');
    fs.writeFileSync(file, 'log:\n  level: info\n');
    const r = traced(['user', 'list', '--config', file], data);
    expect(r.code).toBe(0);
    expect(r.packages.has('yaml')).toBe(true);
    expect(r.packages.has('pg')).toBe(false);
  });

  it('the tracer sees pg when a command does use PostgreSQL (migrate to an unreachable server)', () => {
    const data = tempDir();
    expect(gh(data, ['user', 'list']).code).toBe(0);
    // Port 1 on loopback refuses at once: the command fails after loading the driver.
    const r = traced(['migrate', '--to', 'postgres://gh:s3cret-pw@127.0.0.1:1/gatehouse'], data);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ECONNREFUSED');
    // The redaction moved out of the driver's module: the password still never reaches a message.
    expect(r.stderr).not.toContain('s3cret-pw');
    expect(r.packages.has('pg')).toBe(true);
  });
});
