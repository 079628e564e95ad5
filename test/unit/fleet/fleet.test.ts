import { afterEach, describe, expect, it, vi } from 'vitest';
import { Gate } from '../../../src/auth/admit.js';
import { isGrant } from '../../../src/auth/policy.js';
import { configSchema } from '../../../src/config/schema.js';
import { startFleetSchedule } from '../../../src/fleet/schedule.js';
import type { ScanDeps } from '../../../src/fleet/scan.js';
import { LinePrefixer, printable } from '../../../src/fleet/multihost.js';
import { isMultiTarget, MAX_RUN_HOSTS, parseMultiTarget } from '../../../src/fleet/targets.js';
import { fleetCsv, fleetRow } from '../../../src/fleet/view.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { admin, tempStore } from '../../helpers/store.js';

describe('multi-host targets', () => {
  it('only a list or a group is the multi-host form; LOGIN@HOST stays single', () => {
    expect(isMultiTarget('deploy@web1 uptime')).toBe(false);
    expect(isMultiTarget('deploy@web1,web2 uptime')).toBe(true);
    expect(isMultiTarget('deploy@group:web uptime')).toBe(true);
    expect(isMultiTarget('request deploy@web1')).toBe(false);
    expect(isMultiTarget('uptime a,b@c')).toBe(false);
  });

  it('parses hosts (duplicates dropped, order kept), groups and the command as typed', () => {
    expect(parseMultiTarget('deploy@b,a,b  echo  "x y"')).toEqual({ ok: true, target: { login: 'deploy', hosts: ['b', 'a'], group: null, command: 'echo  "x y"' } });
    expect(parseMultiTarget('deploy@group:web uptime')).toEqual({ ok: true, target: { login: 'deploy', hosts: [], group: 'web', command: 'uptime' } });
  });

  it('refuses what an attacker tries first, before any lookup', () => {
    const r = (line: string) => { const p = parseMultiTarget(line); return p.ok ? 'ok' : p.message; };
    expect(r(`deploy@${Array(10_000).fill('h').join(',')} id`)).toMatch(`at most ${MAX_RUN_HOSTS} hosts in one run (10000 given)`);
    expect(r('deploy@web1,$(reboot) id')).toMatch(/not a host name: "\$\(reboot\)"/);
    expect(r('deploy@web1,web2;id id')).toMatch(/not a host name/);
    expect(r('deploy@web1,,web2 id')).toMatch(/not a host name: ""/);
    expect(r('deploy@web1,web2')).toMatch(/needs a command/);
    expect(r('de;ploy@web1,web2 id')).toMatch(/not a login name/);
    expect(r('deploy@group:../x id')).toMatch(/not a host group name/);
    expect(r('deploy@web1,we\u001bb2 id')).not.toContain('\u001b');
  });
});

describe('the gate for fleet scans', () => {
  it('admits an enabled host with a Grant for exec only; refuses unknown and disabled hosts, audited', async () => {
    const { store } = tempStore();
    await store.hosts.add({ name: 'web1', address: '10.0.0.1', port: 22, groups: [], hostKey: null, hostKeyFingerprint: null }, admin);
    await store.hosts.add({ name: 'web2', address: '10.0.0.2', port: 22, groups: [], hostKey: null, hostKeyFingerprint: null }, admin);
    await store.hosts.setEnabled('web2', false, admin);
    const gate = new Gate({ store });
    const ok = await gate.system('system:fleet', { host: 'web1', login: 'scan' });
    expect(ok.allow).toBe(true);
    if (ok.allow) {
      expect(isGrant(ok.grant)).toBe(true);
      expect(ok.grant).toMatchObject({ user: 'system:fleet', login: 'scan', rights: ['exec'], grantId: 0 });
    }
    expect(await gate.system('system:fleet', { host: 'web2', login: 'scan' })).toMatchObject({ allow: false, reason: 'host_disabled' });
    expect(await gate.system('system:fleet', { host: '10.0.0.1', login: 'scan' })).toMatchObject({ allow: false, reason: 'unknown_host' });
    const denied = await store.audit.list({ type: 'access.denied' });
    expect(denied.map((d) => [d.data.user, d.data.host, d.data.reason, d.data.kind])).toEqual(expect.arrayContaining([
      ['system:fleet', 'web2', 'host_disabled', 'fleet'], ['system:fleet', '10.0.0.1', 'unknown_host', 'fleet'],
    ]));
    await store.close();
  });
});

describe('fleet config, schedule and views', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('config: off by default, durations checked, login checked', () => {
    expect(configSchema.parse({}).fleet).toEqual({ scanEvery: null, parallel: 8, timeout: 60_000 });
    expect(configSchema.parse({ fleet: { scanEvery: '6h', login: 'gatehouse-scan' } }).fleet).toMatchObject({ scanEvery: 6 * 3600_000, login: 'gatehouse-scan' });
    expect(configSchema.parse({ fleet: { scanEvery: false } }).fleet.scanEvery).toBeNull();
    expect(() => configSchema.parse({ fleet: { scanEvery: '5s' } })).toThrow(/at least 1m/);
    expect(() => configSchema.parse({ fleet: { login: 'root; rm' } })).toThrow(/login name/);
    expect(() => configSchema.parse({ fleet: { parallel: 0 } })).toThrow();
  });

  it('the schedule scans every period, never two passes at once, and not without fleet.login', async () => {
    vi.useFakeTimers();
    let calls = 0;
    let release: () => void = () => undefined;
    const scan = vi.fn(() => { calls++; return new Promise<never[]>((r) => { release = () => r([]); }); });
    const deps = { config: configSchema.parse({ fleet: { login: 'scan', scanEvery: '1m' } }) } as unknown as ScanDeps;
    const s = startFleetSchedule(deps, 60_000, silentLogger(), scan);
    await vi.advanceTimersByTimeAsync(59_000);
    expect(calls).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(120_000); // still running: no second pass
    expect(calls).toBe(1);
    release();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(2);
    release();
    await s.stop();
    const none = startFleetSchedule({ config: configSchema.parse({}) } as unknown as ScanDeps, 60_000, silentLogger(), scan);
    await vi.advanceTimersByTimeAsync(180_000);
    expect(calls).toBe(2);
    await none.stop();
  });

  it('rows: red for failed scans, security updates, reboot, disk over 90 %; unknown is not fine; CSV is formula-safe', () => {
    const host = { id: 1, name: 'web1', address: '10.0.0.1', port: 22, hostKey: null, enabled: true, groups: [], createdAt: 0 };
    expect(fleetRow(host, undefined)).toMatchObject({ reachable: null, problems: [] });
    const facts = {
      os: { id: 'debian', name: 'Debian', version: '12', prettyName: '=HYPERLINK("x")' }, kernel: '6.1', uptimeSeconds: 1, rebootRequired: true,
      updates: { manager: 'apt' as const, pending: 3, security: 1, packages: [] }, disks: [], diskMaxPercent: 91, failedUnits: [], timeSynced: true,
      sshd: { readable: false, flags: [] }, truncated: false,
    };
    const row = fleetRow(host, { host: 'web1', scannedAt: 0, reachable: true, error: null, sessionId: 's', durationMs: 1, facts });
    expect(row.problems).toEqual(['security updates', 'reboot required', 'disk > 90%']);
    expect(fleetRow(host, { host: 'web1', scannedAt: 0, reachable: false, error: 'unreachable', sessionId: null, durationMs: 1, facts: null }).problems).toEqual(['scan failed']);
    expect(fleetCsv([row]).split('\n')[1]).toContain(`"'=HYPERLINK(""x"")"`);
  });
});

describe('multi-host output prefixing', () => {
  const collect = () => {
    const got: Buffer[] = [];
    const p = new LinePrefixer('h1: ', '\n', (b, cb) => { got.push(b); cb(); });
    return { p, text: () => Buffer.concat(got).toString('latin1') };
  };

  it('a target cannot pass for another host: CR, ESC and C1 controls become "?"', () => {
    const { p, text } = collect();
    p.write(Buffer.from('ok\r\nx\rh2: fake\n\x1b[8mhidden\x1b[0m\n\u009b2J\n\ttab\n'), () => undefined);
    // U+009B (CSI) is two bytes in UTF-8: both become "?".
    expect(text()).toBe('h1: ok\nh1: x?h2: fake\nh1: ?[8mhidden?[0m\nh1: ??2J\nh1: \ttab\n');
  });

  it('one byte at a time: the same lines, joined once', () => {
    const { p, text } = collect();
    const data = Buffer.from(`${'a'.repeat(100_000)}\nb\n`);
    for (let i = 0; i < data.length; i++) p.write(data.subarray(i, i + 1), () => undefined);
    p.flush(() => undefined);
    const lines = text().split('\n');
    expect(lines[0]).toBe(`h1: ${'a'.repeat(64 * 1024)}`);
    expect(lines[1]).toBe(`h1: ${'a'.repeat(100_000 - 64 * 1024)}`);
    expect(lines[2]).toBe('h1: b');
  });

  it('printable leaves clean output untouched (no copy)', () => {
    const b = Buffer.from('plain ascii and ünïcode\ttab');
    expect(printable(b)).toBe(b);
  });
});
