import { isoTime } from '../shared/clock.js';
import type { HostRecord, Store } from '../store/types.js';
import type { FleetScanRecord } from './facts.js';

/**
 * One row per host for `fleet list`, the Fleet page and /metrics, built the same way for all three.
 * `problems` is what the page paints red: a failed scan, security updates pending, a reboot
 * required, a disk over DISK_RED percent.
 */
export const DISK_RED = 90;

export interface FleetRow {
  host: string;
  address: string;
  enabled: boolean;
  /** null: never scanned. */
  reachable: boolean | null;
  os: string | null;
  kernel: string | null;
  packageManager: string | null;
  pending: number | null;
  security: number | null;
  reboot: boolean | null;
  diskMaxPercent: number | null;
  failedUnits: number | null;
  timeSynced: boolean | null;
  sshdFlags: string[] | null;
  uptimeSeconds: number | null;
  lastScan: string | null;
  error: string | null;
  session: string | null;
  problems: string[];
}

export function fleetRow(h: HostRecord, s: FleetScanRecord | undefined): FleetRow {
  const f = s?.facts ?? null;
  const problems: string[] = [];
  if (s && (!s.reachable || s.error)) problems.push('scan failed');
  else if (f?.truncated) problems.push('scan incomplete');
  if ((f?.updates.security ?? 0) > 0) problems.push('security updates');
  if (f?.rebootRequired) problems.push('reboot required');
  if ((f?.diskMaxPercent ?? 0) > DISK_RED) problems.push(`disk > ${DISK_RED}%`);
  return {
    host: h.name, address: `${h.address}:${h.port}`, enabled: h.enabled, reachable: s ? s.reachable : null,
    os: f ? (f.os.prettyName ?? ([f.os.name, f.os.version].filter(Boolean).join(' ') || null)) : null,
    kernel: f?.kernel ?? null, packageManager: f?.updates.manager ?? null, pending: f?.updates.pending ?? null, security: f?.updates.security ?? null,
    reboot: f?.rebootRequired ?? null, diskMaxPercent: f?.diskMaxPercent ?? null, failedUnits: f?.failedUnits?.length ?? null,
    timeSynced: f?.timeSynced ?? null, sshdFlags: f ? (f.sshd.readable ? f.sshd.flags : null) : null, uptimeSeconds: f?.uptimeSeconds ?? null,
    lastScan: s ? isoTime(s.scannedAt) : null, error: s?.error ?? null, session: s?.sessionId ?? null, problems,
  };
}

/** Every host gatehouse knows, with its latest scan (hosts removed since are not listed). */
export async function fleetRows(store: Store): Promise<FleetRow[]> {
  const [hosts, scans] = await Promise.all([store.hosts.list(), store.fleet.list()]);
  const byHost = new Map(scans.map((s) => [s.host, s]));
  return hosts.sort((a, b) => a.name.localeCompare(b.name)).map((h) => fleetRow(h, byHost.get(h.name)));
}

export const CSV_COLUMNS = ['host', 'address', 'reachable', 'os', 'kernel', 'pending', 'security', 'reboot', 'diskMaxPercent', 'failedUnits', 'timeSynced', 'lastScan', 'error'] as const;

/** RFC 4180; a cell a spreadsheet would run as a formula gets a leading apostrophe (target text is untrusted). */
export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function fleetCsv(rows: FleetRow[]): string {
  return [CSV_COLUMNS.join(','), ...rows.map((r) => CSV_COLUMNS.map((c) => csvCell(r[c])).join(','))].join('\n');
}

const yn = (b: boolean | null) => (b === null ? '?' : b ? 'yes' : 'no');
const num = (n: number | null) => (n === null ? '?' : String(n));

/** Cells for the CLI table (and the page). */
export function textCells(r: FleetRow): string[] {
  return [
    r.host, r.reachable === null ? 'never scanned' : r.reachable ? 'yes' : 'NO', r.os ?? '?', r.kernel ?? '?',
    `${num(r.pending)}/${num(r.security)}`, yn(r.reboot), r.diskMaxPercent === null ? '?' : `${r.diskMaxPercent}%`, num(r.failedUnits), r.lastScan ?? '-',
    r.problems.join(', ') || (r.reachable === null ? '' : 'ok'),
  ];
}

export const TEXT_HEADER = ['HOST', 'REACHABLE', 'OS', 'KERNEL', 'UPDATES/SEC', 'REBOOT', 'DISK MAX', 'FAILED UNITS', 'LAST SCAN', 'STATUS'];
