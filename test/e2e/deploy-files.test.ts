import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
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
    expect(all.map((r) => r.alert).sort()).toEqual(['GatehouseAuthFailureBurst', 'GatehouseDiskFloor', 'GatehouseDiskLow', 'GatehouseDown', 'GatehouseLockouts', 'GatehouseRecordingFailures', 'GatehouseRecordingUploadsStuck']);
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

  it('the two-node compose file: PostgreSQL, an S3 store, two nodes with distinct names on one data volume, a TCP balancer', () => {
    const dir = path.join(ROOT, 'config/compose');
    const compose = parse(read('config/compose/compose.yaml'), { merge: true }) as {
      services: Record<string, { image?: string; build?: string; command?: string[]; environment?: Record<string, string>; volumes?: string[]; configs?: { source: string }[]; stop_grace_period?: string; depends_on?: Record<string, unknown> }>;
      configs: Record<string, { file: string }>;
    };
    const s = compose.services;
    expect(s.postgres!.image).toMatch(/^postgres:/);
    expect(s.s3!.image).toMatch(/minio/);
    const nodes = ['gatehouse-a', 'gatehouse-b'].map((n) => s[n]!);
    const names = new Set<string>();
    for (const n of nodes) {
      expect(n.build).toBe('../..');
      expect(n.volumes).toContain('gatehouse-data:/data');
      // Longer than shutdownGrace (30 s): the drain ends before compose kills the container.
      expect(parseInt(n.stop_grace_period!, 10)).toBeGreaterThan(30);
      // No secret in a URL or a file: the password and the S3 keys come from the environment.
      expect(Object.keys(n.environment!)).toEqual(expect.arrayContaining(['PGPASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']));
      // Each node's config is a real gatehouse config: it loads through the same validation as serve.
      const file = path.join(dir, compose.configs[n.configs![0]!.source]!.file);
      const cfg = loadConfig({ config: file }, {});
      expect(cfg.store).toMatch(/^postgres:\/\/gatehouse@postgres:5432\//);
      expect(cfg.recording.storage?.s3?.endpoint).toBe('http://s3:9000');
      expect(cfg.ssh.listen.port).toBe(2222);
      names.add(String(cfg.node.name));
    }
    expect(names.size).toBe(2);
    // The second node starts once the first is healthy, so the shared keys are created once.
    expect(Object.keys(s['gatehouse-b']!.depends_on!)).toContain('gatehouse-a');
    const haproxy = fs.readFileSync(path.join(dir, 'haproxy.cfg'), 'utf8');
    expect(haproxy).toMatch(/^\s*mode tcp$/m);
    for (const n of ['gatehouse-a:2222', 'gatehouse-b:2222', 'gatehouse-a:8080', 'gatehouse-b:8080']) expect(haproxy).toContain(n);
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
