import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium } from '../helpers/browser.js';
import { BIN, ROOT, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { poll, startProc } from '../helpers/proc.js';
import { haveOpenSsh, startSshd, type Sshd } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import { systemClock } from '../../src/shared/clock.js';

/**
 * Fleet maintenance through the bastion (src/fleet), against real sshd targets on 127.0.0.1 and the
 * real binary: scans fill `fleet list` with what this machine really runs, each scan is a recorded
 * session of system:fleet, a stopped target is unreachable, a changed host key is reported and not
 * accepted; the Fleet page renders in Chromium; multi-host runs print prefixed lines and a summary,
 * fail closed on any refused host (nothing runs), write one recording per host, and end on every
 * host when access is revoked. One World for the whole file (sshd × 4, one server).
 */
type AuditRow = { id: number; type: string; actor: string; data: Record<string, unknown> };
type FleetRow = {
  host: string; reachable: boolean | null; os: string | null; kernel: string | null; pending: number | null; security: number | null;
  reboot: boolean | null; diskMaxPercent: number | null; lastScan: string | null; error: string | null; session: string | null; problems: string[];
};
type SessionJson = { id: string; user: string; channels: { channel: number; host: string; exitStatus: number | null }[]; recordings: { channel: number; file: string; state: string; size: number | null }[] };

const PASSWORD = 'fleet-auditor-passphrase';
const osPretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))![1]!;
const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();

describe.runIf(haveOpenSsh())('fleet: scans and multi-host runs through the bastion', () => {
  let w: World;
  const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
  let alice: Operator;
  let t2: Sshd;
  let t3: Sshd;
  let t4: Sshd;
  let cfg: string;
  let marks: string;
  const audit = (type: string) => ghJson<AuditRow[]>(w.data, ['audit', '--type', type, '--limit', '100000']);
  /** The CLI with room for a slow scan (apt-get -s on a busy machine takes seconds per host). */
  const gh = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args, '--data', w.data, '--config', cfg], {
      encoding: 'utf8', timeout: 240_000, env: { ...process.env, GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const newestSession = (user: string) => ghJson<{ id: string; user: string }[]>(w.data, ['sessions', 'list', '--user', user])[0]!;
  const show = (id: string) => ghJson<SessionJson>(w.data, ['sessions', 'show', id]);

  beforeAll(async () => {
    // The per-host gauges are served only with the /metrics bearer token (web.metricsTokenEnv).
    process.env.GH_TEST_METRICS_TOKEN = METRICS_TOKEN;
    w = await startWorld({ config: `web:\n  metricsTokenEnv: GH_TEST_METRICS_TOKEN\nauth:\n  mfaGrace: 1h\nfleet:\n  login: ${process.env.USER === 'root' || !process.env.USER ? 'root' : process.env.USER}\n  parallel: 4\n  timeout: 180s\n` });
    cfg = path.join(w.dir, 'gatehouse.yaml');
    marks = tempDir('gatehouse-fleet-marks-');
    const clientKey = ghOk(w.data, ['key', 'show']).trim();
    [t2, t3, t4] = await Promise.all([startSshd([clientKey]), startSshd([clientKey]), startSshd([clientKey])]);
    ghOk(w.data, ['host', 'add', 'target2', '--address', '127.0.0.1', '--port', String(t2.port), '--host-key', t2.hostKey, '--group', 'web']);
    ghOk(w.data, ['host', 'add', 'target3', '--address', '127.0.0.1', '--port', String(t3.port), '--host-key', t3.hostKey, '--group', 'web']);
    // Running, pinned, and granted to nobody: the host a run must never reach uninvited.
    ghOk(w.data, ['host', 'add', 'target4', '--address', '127.0.0.1', '--port', String(t4.port), '--host-key', t4.hostKey]);
    // An imposter: target2's port, pinned to target3's key (a changed host key).
    ghOk(w.data, ['host', 'add', 'imposter', '--address', '127.0.0.1', '--port', String(t2.port), '--host-key', t3.hostKey]);
    // A target that was running when it was added, then stopped.
    const dead = await startSshd([clientKey]);
    ghOk(w.data, ['host', 'add', 'stopped', '--address', '127.0.0.1', '--port', String(dead.port), '--host-key', dead.hostKey]);
    await dead.stop();
    alice = w.operator('alice');
    for (const h of ['target1', 'target2', 'target3']) ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', h, '--login', w.login, '--allow', 'exec']);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([t2?.stop(), t3?.stop(), t4?.stop()]);
    await w?.stop();
  });

  it('fleet scan fills fleet list with the OS, kernel, updates, reboot flag and disks this machine has', () => {
    const r = gh(['fleet', 'scan']);
    // One host is down and one has a changed key: the scan says so and exits 1.
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/6 host\(s\) scanned, 2 failed/);
    const rows = ghJson<FleetRow[]>(w.data, ['fleet', 'list']);
    const by = new Map(rows.map((x) => [x.host, x]));
    for (const h of ['target1', 'target2', 'target3', 'target4']) {
      const row = by.get(h)!;
      expect(row.reachable, `${h}: ${row.error}`).toBe(true);
      expect(row.os).toBe(osPretty);
      expect(row.kernel).toBe(kernel);
      expect(typeof row.pending).toBe('number');
      expect(typeof row.security).toBe('number');
      expect(row.reboot).toBe(fs.existsSync('/var/run/reboot-required'));
      expect(row.diskMaxPercent).toBeGreaterThanOrEqual(0);
      expect(row.diskMaxPercent).toBeLessThanOrEqual(100);
    }
    expect(by.get('stopped')).toMatchObject({ reachable: false, error: expect.stringMatching(/unreachable.*ECONNREFUSED/) });
    expect(by.get('stopped')!.problems).toContain('scan failed');
    expect(by.get('imposter')).toMatchObject({ reachable: false, error: expect.stringMatching(/host key of imposter changed/) });
    expect(audit('host.key_mismatch').some((e) => e.data.host === 'imposter' && e.data.user === 'system:fleet')).toBe(true);

    const csv = ghOk(w.data, ['fleet', 'list', '--csv']).trim().split('\n');
    expect(csv[0]).toBe('host,address,reachable,os,kernel,pending,security,reboot,diskMaxPercent,failedUnits,timeSynced,lastScan,error');
    expect(csv).toHaveLength(7);
    expect(ghOk(w.data, ['fleet', 'show', 'target1'])).toContain(`kernel        ${kernel}`);
  }, 300_000);

  it('each scan is a recorded session of system:fleet with its audit events, and verify accepts the recordings', () => {
    const rows = ghJson<FleetRow[]>(w.data, ['fleet', 'list']).filter((r) => r.reachable);
    expect(rows).toHaveLength(4);
    const scans = audit('fleet.scan');
    for (const row of rows) {
      const s = show(row.session!);
      expect(s.user).toBe('system:fleet');
      expect(s.recordings).toHaveLength(1);
      expect(s.recordings[0]).toMatchObject({ state: 'closed' });
      const cast = fs.readFileSync(path.join(w.data, 'recordings', s.recordings[0]!.file), 'utf8');
      expect(cast).toContain('@@gatehouse-fleet:os@@');
      expect(cast).toContain('@@gatehouse-fleet:end@@');
      expect(scans.some((e) => e.data.session === row.session && e.data.host === row.host)).toBe(true);
    }
    const channel = audit('session.channel').find((e) => e.data.session === rows[0]!.session)!;
    expect(channel.data).toMatchObject({ user: 'system:fleet', kind: 'exec', command: expect.stringContaining("/bin/sh -c 'LC_ALL=C") });
    expect(audit('session.end').filter((e) => e.data.user === 'system:fleet').length).toBeGreaterThanOrEqual(5);
    const v = gh(['verify']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  }, 120_000);

  it('a scan of one host or one group, and /metrics gauges per host', async () => {
    const r = gh(['fleet', 'scan', '--group', 'web', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).map((x: { host: string }) => x.host).sort()).toEqual(['target2', 'target3']);
    expect(gh(['fleet', 'scan', '--host', 'nosuch']).code).not.toBe(0);
    // Host names and their exposure are not for whoever reaches the port: no token, no metrics.
    expect((await fetch(`${w.web}/metrics`)).status).toBe(401);
    expect((await fetch(`${w.web}/metrics`, { headers: { authorization: 'Bearer not-the-token-at-all' } })).status).toBe(401);
    const metrics = await (await fetch(`${w.web}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    expect(metrics).toMatch(/^gatehouse_fleet_host_reachable\{host="target1"\} 1$/m);
    expect(metrics).toMatch(/^gatehouse_fleet_host_reachable\{host="stopped"\} 0$/m);
    expect(metrics).toMatch(/^gatehouse_fleet_updates_pending\{host="target2"\} \d+$/m);
    expect(metrics).toMatch(/^gatehouse_fleet_disk_used_max_percent\{host="target3"\} \d+$/m);
  }, 300_000);

  it.runIf(haveChromium())('the Fleet page renders the table, sortable, red where a host needs attention', async () => {
    const audrey = w.operator('audrey', { roles: ['auditor'] });
    ghOk(w.data, ['user', 'password', 'audrey'], { input: `${PASSWORD}\n` });
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const page = await browser.newPage();
      await page.goto(`${w.web}/login`);
      await page.fill('input[name=username]', 'audrey');
      await page.fill('input[name=password]', PASSWORD);
      await page.fill('input[name=code]', execFileSync('oathtool', ['--totp', '-b', audrey.secret], { encoding: 'utf8' }).trim());
      await page.click('button[type=submit]');
      await page.waitForURL(/\/sessions$/);
      await page.goto(`${w.web}/fleet?sort=host&dir=desc`);
      const hosts = await page.$$eval('#fleet tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-host')));
      expect(hosts).toEqual(['target4', 'target3', 'target2', 'target1', 'stopped', 'imposter']);
      expect(await page.getAttribute('tr[data-host=stopped]', 'class')).toBe('fleet-bad');
      expect(await page.textContent('tr[data-host=target1] td:nth-child(3)')).toBe(osPretty);
      expect(await page.textContent('tr[data-host=target1] td:nth-child(4)')).toBe(kernel);
      // Each row links to its scan's session page (the recording of what the bastion ran).
      const href = await page.getAttribute('tr[data-host=target1] a[href^="/sessions/"]', 'href');
      const res = await page.goto(`${w.web}${href}`);
      expect(res?.status()).toBe(200);
      expect(await page.textContent('main')).toContain('system:fleet');
      await page.goto(`${w.web}/fleet?sort=host&dir=desc`);
      fs.mkdirSync(path.join(ROOT, 'test', 'artifacts'), { recursive: true });
      await page.screenshot({ path: path.join(ROOT, 'test', 'artifacts', 'fleet-page.png'), fullPage: true });
    } finally {
      await browser?.close();
    }
  }, 120_000);

  it('a hostile target: 3 MiB of random bytes is cut at 1 MiB, a hanging one at fleet.timeout; both recorded', async () => {
    const clientKey = ghOk(w.data, ['key', 'show']).trim();
    const noisy = await startSshd([clientKey], { config: ['ForceCommand head -c 3000000 /dev/urandom'] });
    const sleeper = await startSshd([clientKey], { config: ['ForceCommand sleep 600'] });
    try {
      ghOk(w.data, ['host', 'add', 'noisy', '--address', '127.0.0.1', '--port', String(noisy.port), '--host-key', noisy.hostKey]);
      ghOk(w.data, ['host', 'add', 'sleeper', '--address', '127.0.0.1', '--port', String(sleeper.port), '--host-key', sleeper.hostKey]);
      const short = path.join(w.dir, 'fleet-short.yaml');
      fs.writeFileSync(short, `fleet:\n  login: ${w.login}\n  timeout: 5s\n`);
      const r = spawnSync(process.execPath, [BIN, 'fleet', 'scan', '--host', 'noisy', '--host', 'sleeper', '--json', '--data', w.data, '--config', short], {
        encoding: 'utf8', timeout: 120_000, env: { ...process.env, GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' },
      });
      // Cut at fleet.timeout, not after the sleeper's 600 s (the spawn's own 120 s bound would have
      // killed the scan: no exit status 0): the outcome below, not a time threshold.
      expect(r.status, r.stderr).toBe(0);
      const by = new Map(ghJson<FleetRow[]>(w.data, ['fleet', 'list']).map((x) => [x.host, x]));
      expect(by.get('noisy')).toMatchObject({ reachable: true, os: null, kernel: null, pending: null, problems: ['scan incomplete'] });
      expect(by.get('sleeper')).toMatchObject({ reachable: true, error: expect.stringMatching(/timed out after 5000 ms/), problems: ['scan failed'] });
      for (const h of ['noisy', 'sleeper']) {
        const s = show(by.get(h)!.session!);
        expect(s.recordings).toHaveLength(1);
        expect(s.recordings[0]!.state).toBe('closed');
      }
      // The channel row counts what the target sent before the cut: at least 1 MiB, far from 3.
      const noisyChannel = ghJson<{ channels: { stdoutBytes: number }[] }>(w.data, ['sessions', 'show', by.get('noisy')!.session!]).channels[0]!;
      expect(noisyChannel.stdoutBytes).toBeGreaterThanOrEqual(1024 * 1024);
    } finally {
      await Promise.all([noisy.stop(), sleeper.stop()]);
    }
  }, 180_000);

  it('a multi-host run: prefixed lines from each host, a summary, exit 0, one recording per host', async () => {
    const r = await w.ssh(alice, [`${w.login}@target1,target2,target3`, 'echo first; echo second'], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    for (const h of ['target1', 'target2', 'target3']) {
      expect(r.stdout).toContain(`${h}: first\n`);
      expect(r.stdout).toContain(`${h}: second\n`);
    }
    expect(r.stdout).toMatch(/gatehouse: 3 host\(s\), 3 exited 0, 0 failed/);
    expect(r.stdout).toMatch(/^target2\s+0\s+\d+\.\d+s$/m);
    const s = show(newestSession('alice').id);
    expect(s.channels.map((c) => c.host).sort()).toEqual(['target1', 'target2', 'target3']);
    expect(s.channels.every((c) => c.exitStatus === 0)).toBe(true);
    expect(s.recordings).toHaveLength(3);
    expect(audit('fleet.run').at(-1)!.data).toMatchObject({ user: 'alice', hosts: ['target1', 'target2', 'target3'], command: 'echo first; echo second' });
  }, 120_000);

  it('exits non-zero when one host fails, and a group runs on its hosts', async () => {
    const cmd = `case "$SSH_CONNECTION" in *" ${t3.port}") echo failing; exit 3;; esac; echo fine`;
    const r = await w.ssh(alice, [`${w.login}@group:web`, cmd], { timeoutMs: 90_000 });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('target2: fine\n');
    expect(r.stdout).toContain('target3: failing\n');
    expect(r.stdout).toMatch(/^target3\s+3\s+/m);
    expect(r.stdout).toMatch(/2 host\(s\), 1 exited 0, 1 failed/);
    expect(show(newestSession('alice').id).recordings).toHaveLength(2);
  }, 120_000);

  it('naming an ungranted host runs nothing anywhere, and the message names it', async () => {
    const mark = path.join(marks, 'ungranted');
    const before = audit('session.channel').length;
    const r = await w.ssh(alice, [`${w.login}@target1,target4,target2`, `touch ${mark}`], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/access denied on 1 of 3 host\(s\); nothing ran/);
    expect(r.stderr).toContain('target4: no grant gives alice access to target4');
    expect(fs.existsSync(mark)).toBe(false);
    expect(audit('session.channel').length).toBe(before);
    expect(audit('access.denied').at(-1)!.data).toMatchObject({ user: 'alice', host: 'target4', action: 'exec' });
  }, 90_000);

  it('attacker input: 10,000 names, a huge group, shell metacharacters, duplicates', async () => {
    const mark = path.join(marks, 'attack');
    const before = audit('session.channel').length;
    const many = await w.ssh(alice, [`${w.login}@${Array.from({ length: 10_000 }, () => 't').join(',')}`, `touch ${mark}`], { timeoutMs: 60_000 });
    expect(many.code).toBe(1);
    expect(many.stderr).toMatch(/at most 200 hosts in one run \(10000 given\); nothing ran/);

    const meta = await w.ssh(alice, [`${w.login}@target1,target2;touch\${IFS}${mark},$(touch\${IFS}${mark})`, 'true'], { timeoutMs: 60_000 });
    expect(meta.code).toBe(1);
    expect(meta.stderr).toMatch(/not a host name: "target2;touch/);

    // 201 hosts in one group (added through the store, as `host add` would, without 201 CLI runs).
    const store = createSqliteStore(path.join(w.data, 'gatehouse.db'), systemClock);
    try {
      await store.batch(async () => {
        for (let i = 0; i < 201; i++) {
          await store.hosts.add({ name: `big${i}`, address: '127.0.0.1', port: t4.port, groups: ['big'], hostKey: t4.hostKey, hostKeyFingerprint: null }, { actor: 'test' });
        }
      });
    } finally {
      await store.close();
    }
    const huge = await w.ssh(alice, [`${w.login}@group:big`, `touch ${mark}`], { timeoutMs: 60_000 });
    expect(huge.code).toBe(1);
    expect(huge.stderr).toMatch(/host group big has 201 hosts, more than 200 in one run; nothing ran/);
    expect(fs.existsSync(mark)).toBe(false);
    expect(audit('session.channel').length).toBe(before);

    const dup = await w.ssh(alice, [`${w.login}@target1,target1,target1`, 'echo once'], { timeoutMs: 60_000 });
    expect(dup.code, dup.stderr).toBe(0);
    expect(dup.stdout.match(/^target1: once$/gm)).toHaveLength(1);
    expect(show(newestSession('alice').id).channels).toHaveLength(1);
  }, 180_000);

  it('revocation ends the run on every host', async () => {
    const c = w.sshCommand(alice, [`${w.login}@target1,target2,target3`, 'echo started; sleep 60']);
    const p = startProc('setsid', ['-w', 'ssh', ...c.args], { env: c.env });
    const running = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => p.child.on('close', (code) => resolve({ code, stdout: p.stdout(), stderr: p.stderr() })));
    // Wait (bounded) until all three channels run: each host's first line reached the operator (seen
    // on the client's output, not by polling the CLI), then the session holds three channels.
    await poll('three hosts started', () => (['target1', 'target2', 'target3'].every((h) => p.stdout().includes(`${h}: started\n`)) ? true : p.child.exitCode !== null ? (() => { throw new Error(p.stderr()); })() : undefined), 60_000);
    const id = newestSession('alice').id;
    expect(show(id).channels).toHaveLength(3);
    expect(audit('fleet.run').at(-1)!.data.session).toBe(id);
    ghOk(w.data, ['user', 'disable', 'alice', '--reason', 'fleet test']);
    const r = await running;
    // Each host's channel was ended by revocation, before its sleep would have (no exit status 0, the
    // revocation message on each): the outcome, not a time threshold.
    expect(r.code).not.toBe(0);
    for (const h of ['target1', 'target2', 'target3']) {
      expect(r.stdout).toContain(`${h}: started\n`);
      expect(r.stderr).toMatch(new RegExp(`^${h}: gatehouse: access revoked`, 'm'));
    }
    expect(audit('session.terminated').filter((e) => e.data.session === id).length).toBeGreaterThanOrEqual(1);
    expect(show(id).channels.every((c) => c.exitStatus !== 0)).toBe(true);
  }, 120_000);
});
