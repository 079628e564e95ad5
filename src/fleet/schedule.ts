import type { Logger } from '../shared/logger.js';
import { scanFleet, type ScanDeps } from './scan.js';

/**
 * `fleet.scanEvery`: the server scans every enabled host that often, the first time one period
 * after start (a restart loop never turns into a scan storm). A pass still running when the next
 * is due is not doubled: the next waits for the following period.
 */
export interface FleetSchedule {
  stop(): Promise<void>;
}

export function startFleetSchedule(deps: ScanDeps, everyMs: number | null, log: Logger, scan: typeof scanFleet = scanFleet): FleetSchedule {
  if (everyMs === null || !deps.config.fleet.login) {
    if (everyMs !== null) log.warn('fleet.scanEvery is set but fleet.login is not: no scheduled fleet scans');
    return { stop: async () => undefined };
  }
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = scan(deps)
      .then((r) => log.info({ hosts: r.length, failed: r.filter((x) => !x.reachable).length }, 'fleet scan done'))
      .catch((err: unknown) => log.error({ err }, 'fleet scan failed'))
      .finally(() => { running = null; });
  }, everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
