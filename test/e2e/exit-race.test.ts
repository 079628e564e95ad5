import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import type { AddressInfo } from 'node:net';
import { ghAsync, ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * A target that answers an exec with its success, output, exit status, EOF and CLOSE in the same
 * event-loop turn: ssh2's patched writer sends them in one write, so the bastion reads them in one
 * socket read. A loaded OpenSSH target does the same for a command that ends at once (`exit 3`).
 * The exit status then arrives before the exec callback's continuation runs; it must still reach
 * the operator (single host) and the multi-host summary.
 */
function startBurstTarget(): Promise<{ server: ssh2.Server; port: number; hostKey: string }> {
  const keys = ssh2.utils.generateKeyPairSync('ed25519');
  const server = new ssh2.Server({ hostKeys: [keys.private] }, (client) => {
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => ctx.accept());
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec, _reject, info) => {
          const ch = acceptExec();
          // `exit N` in the command sets the status; anything else (the fleet probe) exits 3.
          const status = /exit (\d+)/.exec(info.command)?.[1] ?? 3;
          ch.write(`ran ${info.command}\n`);
          ch.exit(Number(status));
          ch.end();
        });
      });
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    resolve({ server, port: (server.address() as AddressInfo).port, hostKey: keys.public.trim().split(' ').slice(0, 2).join(' ') });
  }));
}

describe.runIf(haveOpenSsh())('an exit status that arrives with the exec reply', () => {
  let w: World;
  let alice: Operator;
  let burst: Awaited<ReturnType<typeof startBurstTarget>>;

  beforeAll(async () => {
    burst = await startBurstTarget();
    // Several logins in one TOTP step: the grace spares each a fresh code.
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    alice = w.operator('alice');
    for (const h of ['burst1', 'burst2']) {
      ghOk(w.data, ['host', 'add', h, '--address', '127.0.0.1', '--port', String(burst.port), '--host-key', burst.hostKey]);
      ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', h, '--login', w.login, '--allow', 'exec']);
    }
  }, 120_000);

  afterAll(async () => {
    await w?.stop();
    burst?.server.close();
  });

  it('reaches the operator of a single-host exec, every time', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await w.ssh(alice, [`${w.login}@burst1`, 'exit 3'], { timeoutMs: 60_000 });
      expect(r.stdout, r.stderr).toContain('ran exit 3');
      expect(r.code).toBe(3);
    }
  }, 180_000);

  it('reaches the multi-host summary', async () => {
    const r = await w.ssh(alice, [`${w.login}@burst1,burst2`, 'exit 3'], { timeoutMs: 60_000 });
    expect(r.stdout).toMatch(/^burst1\s+3\s+/m);
    expect(r.stdout).toMatch(/^burst2\s+3\s+/m);
    expect(r.stdout).toMatch(/2 host\(s\), 0 exited 0, 2 failed/);
    expect(r.code).toBe(1);
  }, 120_000);

  it('reaches the channel row of a fleet scan (the scan reads the exit status the same way)', async () => {
    // Not spawnSync: the target lives in this process and must answer while the scan runs.
    const r = await ghAsync(w.data, ['fleet', 'scan', '--host', 'burst1', '--host', 'burst2', '--login', 'probe', '--json'], { timeoutMs: 90_000 });
    expect(r.stdout, r.stderr).toMatch(/^\[/);
    const scans = JSON.parse(r.stdout) as { host: string; sessionId: string | null }[];
    expect(scans.map((s) => s.host).sort(), r.stderr).toEqual(['burst1', 'burst2']);
    for (const s of scans) {
      const show = ghJson<{ channels: { exitStatus: number | null }[] }>(w.data, ['sessions', 'show', s.sessionId!]);
      expect(show.channels[0]!.exitStatus).toBe(3);
    }
  }, 120_000);
});
