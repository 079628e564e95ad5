import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, tempDir } from '../helpers/cli.js';
import { freePort, startProc, type Proc } from '../helpers/proc.js';

/**
 * The files operators deploy with: the systemd unit passes systemd-analyze, the alert rules and the
 * dashboard parse, every gatehouse_* metric they name is served by a running server, and the
 * runtime declared in package.json, the lockfile and the Dockerfile agree.
 */
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
const metricNames = (exprs: string[]) => new Set(exprs.flatMap((e) => e.match(/\bgatehouse_[a-z_]+\b/g) ?? []));

function haveSystemdAnalyze(): boolean {
  const ok = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;
  if (!ok && process.env.CI === 'true') throw new Error('systemd-analyze missing: install the Debian package "systemd"');
  return ok;
}

describe('deployment files', () => {
  let server: Proc;
  let metrics = '';

  beforeAll(async () => {
    const data = path.join(tempDir(), 'data');
    const web = await freePort();
    server = startProc(process.execPath, [BIN, 'serve', '--data', data, '--ssh-listen', `127.0.0.1:${await freePort()}`, '--web-listen', `127.0.0.1:${web}`], {
      env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' },
    });
    await server.waitFor(/web UI on/, 30_000);
    metrics = await (await fetch(`http://127.0.0.1:${web}/metrics`)).text();
  }, 60_000);
  afterAll(async () => { expect(await server?.stop()).toBe(0); });

  it.runIf(haveSystemdAnalyze())('the systemd unit passes systemd-analyze verify and is hardened', () => {
    const unit = read('config/gatehouse.service');
    for (const line of ['User=gatehouse', 'ProtectSystem=strict', 'NoNewPrivileges=yes', 'ReadWritePaths=/var/lib/gatehouse', 'Restart=on-failure', 'KillSignal=SIGTERM']) {
      expect(unit).toContain(line);
    }
    // verify also checks that ExecStart's program exists: point it at this checkout for the check.
    const dir = tempDir();
    const copy = path.join(dir, 'gatehouse.service');
    fs.writeFileSync(copy, unit.replace('/usr/bin/node /opt/gatehouse/bin/gatehouse.js', `${process.execPath} ${BIN}`));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 60_000 });
    const complaints = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('gatehouse.service'));
    expect(complaints, `${r.stdout}${r.stderr}`).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('the alert rules parse, and every metric they use is served on /metrics', () => {
    const rules = parse(read('config/prometheus/alerts.yml')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.map((r) => r.alert).sort()).toEqual(['GatehouseAuthFailureBurst', 'GatehouseDiskFloor', 'GatehouseDiskLow', 'GatehouseDown', 'GatehouseLockouts', 'GatehouseRecordingFailures']);
    expect(all.find((r) => r.alert === 'GatehouseDown')!.expr).toMatch(/^up\{job="gatehouse"\} == 0$/);
    const names = metricNames(all.map((r) => r.expr));
    expect(names.size).toBeGreaterThanOrEqual(5);
    for (const n of names) expect(metrics, n).toMatch(new RegExp(`^${n} \\d+$`, 'm'));
  });

  it('the Grafana dashboard parses, and every metric it uses is served on /metrics', () => {
    const dash = JSON.parse(read('config/grafana/dashboard.json')) as { title: string; panels: { title: string; targets: { expr: string }[] }[] };
    expect(dash.title).toBe('gatehouse');
    expect(dash.panels.length).toBeGreaterThan(4);
    const names = metricNames(dash.panels.flatMap((p) => p.targets.map((t) => t.expr)));
    for (const n of names) expect(metrics, n).toMatch(new RegExp(`^${n} \\d+$`, 'm'));
    expect(names).toContain('gatehouse_recording_free_bytes');
  });

  it('the disk gauge is real: the free bytes of the recordings volume, and the floor from the config', () => {
    const free = Number(/^gatehouse_recording_free_bytes (\d+)$/m.exec(metrics)![1]);
    expect(free).toBeGreaterThan(0);
    expect(metrics).toMatch(/^gatehouse_recording_min_free_bytes 104857600$/m);
  });

  it('engines, the lockfile and the Dockerfile name the same maintained Node line', () => {
    const pkg = JSON.parse(read('package.json')) as { engines: { node: string } };
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { engines?: { node: string } }> };
    expect(pkg.engines.node).toBe('>=22.12');
    expect(lock.packages['']!.engines!.node).toBe(pkg.engines.node);
    const froms = [...read('Dockerfile').matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThan(0);
    for (const f of froms) expect(f).toMatch(/^node:(22|24)-bookworm-slim\b/);
    // No installed package asks for a Node newer than the line engines names.
    const tooNew = execFileSync('sh', ['-c', `grep -l '"node": *">=2[3-9]' node_modules/*/package.json node_modules/@*/*/package.json || true`], { cwd: ROOT, encoding: 'utf8' }).trim();
    expect(tooNew).toBe('');
  });
});
