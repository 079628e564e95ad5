import { hostname } from 'node:os';
import type { Config } from './config/schema.js';
import type { DataDir } from './datadir/datadir.js';
import { draft } from './audit/events.js';
import { startAuditMirror, type AuditMirror } from './audit/mirror.js';
import { createWitness, witnessPath } from './audit/witness.js';
import type { Clock } from './shared/clock.js';
import type { Ids } from './shared/ids.js';
import type { Logger } from './shared/logger.js';
import { formatListen } from './shared/units.js';
import type { Store } from './store/types.js';
import { MfaGrace } from './auth/throttle.js';
import { createThrottle } from './cluster/throttle.js';
import { PendingMfa } from './auth/pending.js';
import { createSshServer, type SshServer } from './proxy/server.js';
import type { ObserverFactory } from './shared/channel.js';
import { channelObservers } from './observers.js';
import { Gate } from './auth/admit.js';
import { TargetAuth } from './proxy/targetauth.js';
import { createRecorderFactory, signer } from './recorder/recorder.js';
import { recoverRecordings } from './recorder/recovery.js';
import { createRecordingStorage } from './recorder/storage/index.js';
import { highResClock } from './shared/clock.js';
import { GatehouseError } from './shared/errors.js';
import { LiveHub } from './recorder/livehub.js';
import { Offload } from './shared/offload.js';
import { createWebServer } from './web/server.js';
import type { FastifyInstance } from 'fastify';
import { startDiskWatch, type DiskWatch } from './ops/disk.js';
import { opsMetrics } from './ops/metrics.js';
import { startRetention } from './ops/retention.js';
import { drainSessions, type Drain } from './ops/shutdown.js';
import { startRequestNotifier, type RequestNotifier } from './notify/webhook.js';
import { startFleetSchedule, type FleetSchedule } from './fleet/schedule.js';
import { joinCluster, type ClusterNode } from './cluster/node.js';

import { VERSION } from './shared/version.js';

/** Everything the server needs, built once in main.ts (tests build the same with a fake clock). */
/** How often the housekeeping process looks for closed recordings left in the spool (object storage). */
const RESUME_EVERY_MS = 5 * 60_000;

export interface Deps {
  config: Config;
  dataDir: DataDir;
  store: Store;
  clock: Clock;
  log: Logger;
  ids: Ids;
  /**
   * This process as a node of a cluster (src/cluster/): its name on session rows (default: the host
   * name); `recovered`: a cluster primary already recovered this machine's crash leftovers;
   * `housekeeping: false`: another worker mirrors the audit log, sweeps retention and sends webhooks.
   */
  node?: { name: string; recovered?: boolean; housekeeping?: boolean };
}

export interface Gatehouse {
  start(): Promise<{ ssh: string; web: string }>;
  stop(reason: string): Promise<void>;
  /** During a graceful stop: end the wait for live sessions now (a second signal). */
  hurry(): void;
  /** Accept no new SSH connection or web request (a worker replaced after SIGHUP); live ones go on. */
  stopAccepting(): void;
  /**
   * Hand housekeeping over (a worker retiring after SIGHUP: a fresh worker does it now): the audit
   * mirror, retention, request notices, fleet scans, spool uploads and reaping stop here; sessions go on.
   */
  stopHousekeeping(): Promise<void>;
  readonly ssh: SshServer;
}

export type { ObserverFactory } from './shared/channel.js';

/**
 * `recorder` replaces the recorder and `bench.fileAudit: false` turns the sftp file audit off on
 * read-write channels (the bench measures the relay without them); nothing else watches less.
 */
export function createGatehouse(deps: Deps, recorder?: ObserverFactory, bench: { fileAudit?: boolean } = {}): Gatehouse {
  const { config, store, log, clock, dataDir } = deps;
  let mirror: AuditMirror | undefined;
  let web: FastifyInstance | undefined;
  let retention: ReturnType<typeof startRetention> | undefined;
  let disk: DiskWatch | undefined;
  let resumeTimer: NodeJS.Timeout | undefined;
  let drain: Drain | undefined;
  let requests: RequestNotifier | undefined;
  let fleet: FleetSchedule | undefined;
  const hub = new LiveHub();
  // The recording writes and stream hashes of this app run on this worker thread.
  const offload = new Offload();
  // Where closed recordings are kept: the data directory, or object storage (recordings/ is then the spool).
  const recordings = createRecordingStorage(config, dataDir, { log });
  const ownRecorder = recorder ? null : createRecorderFactory({ config, store, clock: highResClock, log, root: dataDir.paths.recordings, storage: recordings, hostKey: dataDir.hostKey, hub, offload });
  recorder ??= ownRecorder!;
  // The name on this node's session rows: recovery at start closes only these.
  const node = deps.node?.name ?? hostname();
  const housekeeping = deps.node?.housekeeping !== false;
  let cluster: ClusterNode | undefined;
  // Where this node listens, for `gatehouse nodes` (sent with its heartbeats once known).
  let addresses: string[] = [];
  const ssh = createSshServer({
    store, clock, config, log, ids: deps.ids, gate: new Gate({ store }), node,
    observers: channelObservers({ store, log, recorder, offload, fileAudit: bench.fileAudit ?? true, fileContent: { maxBytes: config.recording.fileContent.maxBytes, storage: recordings } }),
    hostKey: dataDir.hostKey, clientKey: dataDir.clientKey, masterKey: dataDir.masterKey, targetKeysDir: dataDir.paths.targetKeys,
    targetAuth: new TargetAuth({
      caDir: dataDir.paths.dir, clientKey: dataDir.clientKey, clock,
      certificateTtlMs: config.targets.certificateTtl, sourceAddresses: config.targets.sourceAddresses,
    }),
    // Login state shared by every worker and node: grace and TOTP-prompt seats in the store, the
    // pre-auth throttle through the primary (per node); sessions.maxPerUser in connection.ts.
    throttle: createThrottle(clock), grace: new MfaGrace(store.logins, clock, config.auth.mfaGrace),
    pendingMfa: new PendingMfa(store.logins, clock, config.auth.maxPendingMfa, config.ssh.loginGraceTime),
    unavailable: () => cluster?.refusal() ?? null,
  });
  /** A start that failed half-way (a port in use): undo what started, so the process can exit. */
  async function abandon(): Promise<void> {
    clearInterval(resumeTimer);
    await web?.close().catch(() => undefined);
    await ssh.close('start_failed').catch(() => undefined);
    await offload.stop().catch(() => undefined);
    await recordings.stop(0).catch(() => undefined);
    await mirror?.stop().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
  }
  return {
    ssh,
    async start() {
      try {
        return await startAll();
      } catch (err) {
        await abandon();
        throw err;
      }
    },
    hurry() {
      drain?.cut();
    },
    stopAccepting() {
      ssh.stopAccepting();
      // Not web.close(): that waits for open live views; the listener alone stops taking requests.
      if (web?.server.listening) web.server.close();
    },
    async stopHousekeeping() {
      cluster?.stopReaping();
      clearInterval(resumeTimer);
      const [r, q, f, m] = [retention, requests, fleet, mirror];
      retention = undefined; requests = undefined; fleet = undefined; mirror = undefined;
      await r?.stop();
      await q?.stop();
      await f?.stop();
      await m?.stop();
    },
    async stop(reason) {
      // Graceful: no new connections, live operators told, up to shutdownGrace for them to finish
      // (ops/shutdown.ts); then what is left is closed as `shutdown`, its recordings closed cleanly.
      ssh.stopAccepting();
      drain = drainSessions({ live: ssh.live, graceMs: config.shutdownGrace, log });
      const drained = await drain.done;
      if (drained.remaining > 0) log.info({ sessions: drained.remaining, waitedMs: drained.waitedMs }, 'stopping: closing the sessions still live');
      await retention?.stop();
      await requests?.stop();
      await fleet?.stop();
      disk?.stop();
      clearInterval(resumeTimer);
      await web?.close();
      await ssh.close('shutdown');
      // After the sessions: their recordings (file, row, audit, index) are closed by now, or a moment
      // later (a channel's relay can end just after its session row was closed): wait for them.
      await ownRecorder?.idle(5_000);
      // Uploads under way get a moment; what is left stays in the spool and goes at the next start.
      await recordings.stop(5_000);
      await offload.stop();
      await store.audit.append(draft('server.stop', 'system', { signal: reason }));
      await mirror?.stop();
      await cluster?.stop();
      await store.close();
    },
  };

  async function startAll(): Promise<{ ssh: string; web: string }> {
    await offload.start();
    // The name first: a second live server with it is refused before anything is repaired.
    cluster = await joinCluster({
      store, clock, log, config, name: node, recordings: dataDir.paths.recordings, sign: signer(dataDir.hostKey),
      live: () => ssh.live.values(), reaper: housekeeping, addresses: () => addresses,
      // A worker's primary holds the serve lock of the node's name; a single server holds its own.
      lockDir: deps.node?.recovered ? undefined : dataDir.paths.dir,
    });
    if (housekeeping) mirror = await startAuditMirror(store, log, createWitness({ file: witnessPath(config, dataDir), store, sign: signer(dataDir.hostKey), clock, log }));
    if (!deps.node?.recovered) {
      await recoverRecordings(store, dataDir.paths.recordings, signer(dataDir.hostKey), log, node);
      const interrupted = await store.sessions.closeInterrupted(node);
      if (interrupted.length > 0) log.warn({ sessions: interrupted }, 'closed sessions left open by a previous run as interrupted');
    }
    // Recordings closed (now, by recovery, or before a crash) but still in the spool: upload them.
    if (housekeeping) await recordings.resume(store);
    // Recordings closed later by another process sharing the spool (a worker that crashed, closed by
    // the primary; a dead node reaped on a shared directory) are picked up by this pass.
    if (housekeeping) {
      resumeTimer = setInterval(() => {
        recordings.resume(store).catch((err: unknown) => log.warn({ err }, 'checking the spool for recordings to upload failed'));
      }, RESUME_EVERY_MS);
      resumeTimer.unref();
    }
    const addr = await ssh.listen(config.ssh.listen);
    const sshAddr = formatListen({ host: addr.address, port: addr.port });
    disk = startDiskWatch({ dir: dataDir.paths.recordings, floor: config.recording.minFreeSpace, log });
    if (housekeeping) requests = await startRequestNotifier({ store, config, log });
    // Scheduled fleet scans (fleet.scanEvery): one node scans, recorded through the same observers.
    if (housekeeping) fleet = startFleetSchedule({
      config, store, clock, log, ids: deps.ids, gate: new Gate({ store }), clientKey: dataDir.clientKey, node,
      observers: channelObservers({ store, log, recorder: recorder!, offload }),
      targetAuth: new TargetAuth({ caDir: dataDir.paths.dir, clientKey: dataDir.clientKey, clock, certificateTtlMs: config.targets.certificateTtl, sourceAddresses: config.targets.sourceAddresses }),
    }, config.fleet.scanEvery, log);
    if (housekeeping) retention = startRetention({ store, root: recordings, clock, log, retention: config.recording.retention });
    web = await createWebServer({
      config, store, clock, log, dataDir, hub, recordings,
      liveCount: () => ssh.live.size,
      liveBytes: () => [...ssh.live.values()].reduce((n, s) => n + s.bytesUp + s.bytesDown, 0),
      metrics: () => opsMetrics({ store, freeBytes: () => disk?.free() ?? null, minFreeSpace: config.recording.minFreeSpace, uploadsPending: () => recordings.pending() }),
    });
    try {
      await web.listen({ host: config.web.listen.host, port: config.web.listen.port });
    } catch (err) {
      throw new GatehouseError('GH_RUNTIME', `cannot listen on ${formatListen(config.web.listen)} for the web UI: ${(err as Error).message}`, {
        hint: 'another process may use the port; change web.listen or --web-listen',
      });
    }
    const webAddr = `${config.web.tls ? 'https' : 'http'}://${formatListen(config.web.listen)}`;
    addresses = [`ssh ${sshAddr}`, `web ${webAddr}`];
    await store.audit.append(draft('server.start', 'system', { version: VERSION, ssh: sshAddr, web: webAddr }));
    await mirror?.flush();
    return { ssh: sshAddr, web: webAddr };
  }
}
