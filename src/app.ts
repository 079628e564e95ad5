import type { Config } from './config/schema.js';
import type { DataDir } from './datadir/datadir.js';
import { draft } from './audit/events.js';
import { startAuditMirror, type AuditMirror } from './audit/mirror.js';
import type { Clock } from './shared/clock.js';
import type { Ids } from './shared/ids.js';
import type { Logger } from './shared/logger.js';
import { formatListen } from './shared/units.js';
import type { Store } from './store/types.js';
import { AddressThrottle, MfaGrace } from './auth/throttle.js';
import { createSshServer, type SshServer } from './proxy/server.js';
import type { ChannelObserver } from './proxy/relay.js';
import type { ChannelContext } from './proxy/channels.js';
import { createRecorderFactory, signer } from './recorder/recorder.js';
import { recoverRecordings } from './recorder/recovery.js';
import { highResClock } from './shared/clock.js';
import { GatehouseError } from './shared/errors.js';
import { LiveHub } from './recorder/livehub.js';
import { createWebServer } from './web/server.js';
import type { FastifyInstance } from 'fastify';

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
  start(): Promise<{ ssh: string; web: string }>;
  stop(reason: string): Promise<void>;
  readonly ssh: SshServer;
}

/** Observers attached to every relayed channel (the recorder joins here). */
export type ObserverFactory = (ctx: ChannelContext) => Promise<ChannelObserver[]>;

export function createGatehouse(deps: Deps, observers?: ObserverFactory): Gatehouse {
  const { config, store, log, clock, dataDir } = deps;
  let mirror: AuditMirror | undefined;
  let web: FastifyInstance | undefined;
  const hub = new LiveHub();
  observers ??= createRecorderFactory({ config, store, clock: highResClock, log, root: dataDir.paths.recordings, hostKey: dataDir.hostKey, hub });
  const ssh = createSshServer({
    store, clock, config, log, ids: deps.ids, observers,
    hostKey: dataDir.hostKey, clientKey: dataDir.clientKey, masterKey: dataDir.masterKey, targetKeysDir: dataDir.paths.targetKeys,
    throttle: new AddressThrottle(clock), grace: new MfaGrace(clock, config.auth.mfaGrace),
  });
  return {
    ssh,
    async start() {
      mirror = await startAuditMirror(store, log, signer(dataDir.hostKey));
      await recoverRecordings(store, dataDir.paths.recordings, signer(dataDir.hostKey), log);
      const interrupted = await store.sessions.closeInterrupted();
      if (interrupted.length > 0) log.warn({ sessions: interrupted }, 'closed sessions left open by a previous run as interrupted');
      const addr = await ssh.listen(config.ssh.listen);
      const sshAddr = formatListen({ host: addr.address, port: addr.port });
      web = await createWebServer({
        config, store, clock, log, dataDir, hub,
        liveCount: () => ssh.live.size,
        liveBytes: () => [...ssh.live.values()].reduce((n, e) => n + e.live.bytesUp + e.live.bytesDown, 0),
      });
      try {
        await web.listen({ host: config.web.listen.host, port: config.web.listen.port });
      } catch (err) {
        throw new GatehouseError('GH_RUNTIME', `cannot listen on ${formatListen(config.web.listen)} for the web UI: ${(err as Error).message}`, {
          hint: 'another process may use the port; change web.listen or --web-listen',
        });
      }
      const webAddr = `${config.web.tls ? 'https' : 'http'}://${formatListen(config.web.listen)}`;
      await store.audit.append(draft('server.start', 'system', { version: VERSION, ssh: sshAddr, web: webAddr }));
      await mirror.flush();
      return { ssh: sshAddr, web: webAddr };
    },
    async stop(reason) {
      await web?.close();
      await ssh.close('server_shutdown');
      await store.audit.append(draft('server.stop', 'system', { signal: reason }));
      await mirror?.stop();
      store.close();
    },
  };
}
