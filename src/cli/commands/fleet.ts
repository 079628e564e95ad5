import { isoTime } from '../../shared/clock.js';
import { notFound, usageError } from '../../shared/errors.js';
import type { FleetScanRecord } from '../../fleet/facts.js';
import { fleetCsv, fleetRow, fleetRows, TEXT_HEADER, textCells } from '../../fleet/view.js';
import { str, strs, table, type Command } from '../command.js';

const SCAN_HELP = [
  'Runs the read-only probe on each enabled host (or those named) as fleet.login, through the same',
  'gate, pinned host keys and recorder as the server: each scan is a recorded session of system:fleet.',
  'The CLI scans by itself (it has the data directory and keys), also while a server runs.',
  'Exit status 1 when any host could not be scanned.',
  '',
  '  --host NAME     only this host (repeatable)',
  '  --group NAME    only the enabled hosts of this host group',
  '  --login LOGIN   the account on the targets (default: fleet.login)',
].join('\n');

function scanJson(r: FleetScanRecord) {
  return { ...r, scannedAt: isoTime(r.scannedAt) };
}

export const commands: Command[] = [
  {
    names: ['fleet', 'scan'], args: '[--host NAME]... [--group NAME] [--login LOGIN]', summary: 'scan hosts now: OS, kernel, pending updates, reboot, disks, units, time, sshd',
    help: SCAN_HELP, json: true, positionals: { min: 0, max: 0 },
    options: { host: { type: 'string', multiple: true }, group: { type: 'string' }, login: { type: 'string' } },
    async handler(ctx, values) {
      const hosts = strs(values, 'host');
      const group = str(values, 'group');
      if (hosts.length > 0 && group !== undefined) throw usageError('give --host or --group, not both');
      const { config, dataDir, store } = await ctx.open();
      // The scanner (the SSH dialer, pino) loads for a scan only: every other CLI run starts faster without it.
      const [{ default: pino }, { createLogger }, { scanFleet }, { withScanner }] = await Promise.all([
        import('pino'), import('../../shared/logger.js'), import('../../fleet/scan.js'), import('../../fleet/standalone.js')]);
      // Scan errors (a bug, not a host that is down: that is the result) go to stderr as JSON lines.
      const log = createLogger({ level: 'error', destination: pino.destination({ dest: 2, sync: true }), format: 'json' });
      const login = str(values, 'login');
      const results = await withScanner({ config, dataDir, store, clock: ctx.clock, log }, (deps) =>
        scanFleet(deps, { ...(hosts.length ? { hosts } : {}), ...(group !== undefined ? { group } : {}), ...(login !== undefined ? { login } : {}) }));
      const all = await store.hosts.list();
      const rows = results.map((r) => fleetRow(all.find((h) => h.name === r.host)!, r));
      const failed = results.filter((r) => !r.reachable).length;
      return {
        json: results.map(scanJson),
        text: results.length === 0 ? 'no enabled host to scan' : `${table(TEXT_HEADER, rows.map(textCells))}\n${results.length} host(s) scanned, ${failed} failed`,
        exitCode: failed > 0 ? 1 : 0,
      };
    },
  },
  {
    names: ['fleet', 'list'], args: '[--csv]', summary: 'one row per host: reachable, OS, kernel, updates, reboot, disk, failed units, last scan',
    json: true, positionals: { min: 0, max: 0 }, options: { csv: { type: 'boolean' } },
    async handler(ctx, values) {
      const { store } = await ctx.open();
      const rows = await fleetRows(store);
      if (values.csv === true) return { text: fleetCsv(rows) };
      return { json: rows, text: rows.length === 0 ? 'no hosts yet' : table(TEXT_HEADER, rows.map(textCells)) };
    },
  },
  {
    names: ['fleet', 'show'], args: 'HOST', summary: "a host's latest scan in full (disks, units, sshd flags, packages)", json: true, positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      const host = await store.hosts.get(name!);
      if (!host) throw notFound(`no host named ${name}`);
      const scan = await store.fleet.get(host.name);
      const row = fleetRow(host, scan ?? undefined);
      if (!scan) return { json: { ...row, scan: null }, text: `${host.name}: never scanned (gatehouse fleet scan --host ${host.name})` };
      const f = scan.facts;
      const lines = [
        `host          ${host.name} (${row.address})`, `last scan     ${row.lastScan} (${scan.durationMs} ms, session ${scan.sessionId ?? '-'})`,
        `reachable     ${scan.reachable ? 'yes' : 'no'}${scan.error ? ` — ${scan.error}` : ''}`,
      ];
      if (f) {
        lines.push(
          `os            ${row.os ?? '?'}`, `kernel        ${f.kernel ?? '?'}`, `uptime        ${f.uptimeSeconds === null ? '?' : `${Math.floor(f.uptimeSeconds / 86400)} d ${Math.floor((f.uptimeSeconds % 86400) / 3600)} h`}`,
          `updates       ${f.updates.manager ?? 'no known package manager'}: ${f.updates.pending ?? '?'} pending, ${f.updates.security ?? '?'} security`,
          `reboot        ${f.rebootRequired === null ? '?' : f.rebootRequired ? 'required' : 'not required'}`,
          `time sync     ${f.timeSynced === null ? '?' : f.timeSynced ? 'synchronized' : 'NOT synchronized'}`,
          `failed units  ${f.failedUnits === null ? '? (no systemd)' : f.failedUnits.join(', ') || 'none'}`,
          `sshd          ${f.sshd.readable ? f.sshd.flags.join('; ') || 'no red flags' : 'sshd -T not readable by the scan login'}`,
          'disks:', ...f.disks.map((d) => `  ${d.usePercent}%  ${d.mount} (${d.filesystem})`),
          ...(f.updates.packages.length ? ['packages:', `  ${f.updates.packages.join(' ')}`] : []),
          ...(f.truncated ? ['(the probe output was cut: some fields may be missing)'] : []),
        );
      }
      if (row.problems.length) lines.push(`problems      ${row.problems.join(', ')}`);
      return { json: { ...row, scan: scanJson(scan) }, text: lines.join('\n') };
    },
  },
];
