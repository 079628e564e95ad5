import type { Config } from './config/schema.js';
import type { DataDir } from './datadir/datadir.js';
import { draft } from './audit/events.js';
import { startAuditMirror, type AuditMirror } from './audit/mirror.js';
import type { Clock } from './shared/clock.js';
import type { Ids } from './shared/ids.js';
import type { Logger } from './shared/logger.js';
import { formatListen } from './shared/units.js';
import type { Store } from './store/types.js';

export const VERSION = '0.1.0';

/** Everything the server needs, built once in main.ts (tests build the same with a fake clock). */
export interface Deps {
  config: Config;
  dataDir: DataDir;
  store: Store;
  clock: Clock;
  log: Logger;
  ids: Ids;
}

export interface Gatehouse {
  start(): Promise<{ ssh: string }>;
  stop(reason: string): Promise<void>;
}

export function createGatehouse(deps: Deps): Gatehouse {
  const { config, store, log } = deps;
  let mirror: AuditMirror | undefined;
  return {
    async start() {
      mirror = await startAuditMirror(store, log);
      const ssh = formatListen(config.ssh.listen);
      await store.audit.append(draft('server.start', 'system', { version: VERSION, ssh, web: formatListen(config.web.listen) }));
      await mirror.flush();
      return { ssh };
    },
    async stop(reason) {
      await store.audit.append(draft('server.stop', 'system', { signal: reason }));
      await mirror?.stop();
      store.close();
    },
  };
}
