import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, tempDir } from '../helpers/cli.js';
import { freePort, startProc, type Proc } from '../helpers/proc.js';

const SSH_AUDIT = '/usr/bin/ssh-audit';

/** Debian's ssh-audit (npm test installs it); in CI its absence is a failure, not a skip. */
function haveSshAudit(): boolean {
  const ok = fs.existsSync(SSH_AUDIT);
  if (!ok && process.env.CI === 'true') throw new Error('ssh-audit missing: run the README test command (npm test installs it)');
  return ok;
}

// ssh-audit 2.5 (Debian 12) predates strict key exchange (the Terrapin fix) and calls its marker unknown.
const ALLOWED = [/^\(kex\) kex-strict-s-v00@openssh\.com -- \[warn\] unknown algorithm$/];

describe.runIf(haveSshAudit())('ssh-audit against the SSH listener', () => {
  let server: Proc;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    server = startProc(process.execPath, [BIN, 'serve', '--data', path.join(tempDir(), 'data'), '--ssh-listen', `127.0.0.1:${port}`, '--web-listen', `127.0.0.1:${await freePort()}`],
      { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' } });
    await server.waitFor(/ssh on 127\.0\.0\.1:\d+/);
  });
  afterAll(async () => { await server?.stop(); });

  it('reports no fail and no warn (other than not knowing kex-strict)', () => {
    // -b: one finding per line; -n: no colour codes.
    const r = spawnSync(SSH_AUDIT, ['-b', '-n', '-t', '20', '-p', String(port), '127.0.0.1'], { encoding: 'utf8', timeout: 60_000 });
    const lines = r.stdout.split('\n').map((l) => l.trim());
    // It did reach the server and list what it offers.
    expect(lines, r.stdout + r.stderr).toContain('(gen) banner: SSH-2.0-gatehouse');
    expect(lines.some((l) => l.startsWith('(kex) curve25519-sha256 '))).toBe(true);
    expect(lines.some((l) => l.startsWith('(enc) '))).toBe(true);
    expect(lines.some((l) => l.startsWith('(mac) '))).toBe(true);
    expect(lines.some((l) => l.startsWith('(key) ssh-ed25519 '))).toBe(true);
    const findings = lines.filter((l) => /\[(warn|fail)\]/.test(l) && !ALLOWED.some((a) => a.test(l)));
    expect(findings).toEqual([]);
  });
});
