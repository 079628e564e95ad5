import type { Store } from '../store/types.js';
import { fleetRows } from './view.js';

/**
 * Per-host gauges for /metrics from the latest fleet scans. A host never scanned, or a value the
 * scan could not read, has no sample (absent, not 0: "unknown" must not look healthy).
 */
const GAUGES = [
  ['gatehouse_fleet_host_reachable', 'The latest fleet scan reached the host (1) or not (0).'],
  ['gatehouse_fleet_updates_pending', 'Package updates pending on the host.'],
  ['gatehouse_fleet_security_updates_pending', 'Security updates pending on the host.'],
  ['gatehouse_fleet_reboot_required', 'The host needs a reboot (1) or not (0).'],
  ['gatehouse_fleet_disk_used_max_percent', 'Use of the fullest mount on the host, in percent.'],
  ['gatehouse_fleet_failed_units', 'Failed systemd units on the host.'],
  ['gatehouse_fleet_last_scan_timestamp_seconds', 'When the host was last scanned (Unix time).'],
] as const;

const label = (s: string) => s.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
const b = (v: boolean | null) => (v === null ? null : v ? 1 : 0);

export async function fleetMetrics(store: Store): Promise<string[]> {
  const rows = (await fleetRows(store)).filter((r) => r.lastScan !== null);
  const values: Record<(typeof GAUGES)[number][0], (r: (typeof rows)[number]) => number | null> = {
    gatehouse_fleet_host_reachable: (r) => b(r.reachable),
    gatehouse_fleet_updates_pending: (r) => r.pending,
    gatehouse_fleet_security_updates_pending: (r) => r.security,
    gatehouse_fleet_reboot_required: (r) => b(r.reboot),
    gatehouse_fleet_disk_used_max_percent: (r) => r.diskMaxPercent,
    gatehouse_fleet_failed_units: (r) => r.failedUnits,
    gatehouse_fleet_last_scan_timestamp_seconds: (r) => Math.floor(Date.parse(r.lastScan!) / 1000),
  };
  return GAUGES.flatMap(([name, help]) => {
    const samples = rows.flatMap((r) => {
      const v = values[name](r);
      return v === null ? [] : [`${name}{host="${label(r.host)}"} ${v}`];
    });
    return [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, ...samples];
  });
}
