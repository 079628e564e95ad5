import cluster from 'node:cluster';
import { createGatehouse } from './app.js';
import { loadConfig, type ConfigFlags } from './config/load.js';
import { openDataDir } from './datadir/datadir.js';
import { acquireServeLock } from './datadir/lock.js';
import { systemClock } from './shared/clock.js';
import { randomIds } from './shared/ids.js';
import { createLogger } from './shared/logger.js';
import { installBenchGc } from './shared/benchgc.js';
import { describeStore, openStore } from './store/open.js';
import { nodeLockPath } from './cluster/lock.js';
import { nodeName } from './cluster/node.js';
import { runPrimary } from './cluster/primary.js';
import { isToWorker, tellPrimary, workerCount, workerRole } from './cluster/workers.js';

/**
 * Composition root: config → data dir → store → deps → start; signals stop it. Human-readable
 * start-up text goes to stderr; stdout carries only the JSON log.
 */
export async function serve(flags: ConfigFlags & { benchNoRecording?: boolean; workers?: string | undefined }, stderr: NodeJS.WriteStream = process.stderr): Promise<void> {
  const config = loadConfig(flags);
  installBenchGc();
  // Several workers: this process becomes their primary (cluster/primary.ts); each worker runs the
  // rest of this function as a node of its own, named by the primary.
  const worker = workerRole();
  if (!worker) {
    const workers = workerCount(flags.workers, config);
    if (workers > 1) return runPrimary({ config, workers, stderr });
  }
  const log = createLogger({ level: config.log.level, format: config.log.format, tty: process.stdout.isTTY === true });
  // A background write that fails (an audit row, a recording row) must be seen, not take the
  // bastion and every live session down with it.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled failure in a background task'));
  const dataDir = openDataDir(config.dataDir);
  // Before anything reads or repairs state: a second server of this name would close the first
  // one's live sessions. Nodes of other names may share the directory. A worker's primary holds it.
  const name = worker?.name ?? nodeName(config);
  const lock = worker ? null : acquireServeLock(nodeLockPath(dataDir.paths.dir, name), systemClock.now());
  // PostgreSQL unreachable at start: the error says so (URL without its password) and the lock is freed.
  const store = await openStore({ config, dataDir, clock: systemClock }).catch((err: unknown) => { lock?.release(); throw err; });
  if (flags.benchNoRecording) {
    // Only `npm run bench` uses this, to measure what recording costs. Never in production.
    log.warn('BENCHMARK MODE: sessions are NOT recorded and sftp files not audited (--bench-no-recording)');
    stderr.write('gatehouse: WARNING: --bench-no-recording: sessions are not recorded, sftp files not audited (benchmark use only)\n');
  }
  const app = createGatehouse({ config, dataDir, store, clock: systemClock, log, ids: randomIds, node: { name, recovered: worker !== null, housekeeping: worker?.housekeeping ?? true } },
    flags.benchNoRecording ? async () => [] : undefined, { fileAudit: !flags.benchNoRecording });
  const needsAdmin = !(await store.users.anyAdmin());
  // Signals are handled from before the first line is printed, so a quick SIGINT still stops cleanly.
  let keepAlive: NodeJS.Timeout | undefined;
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  let onMessage: ((m: unknown) => void) | undefined;
  const ignoreHup = () => undefined;
  const unhook = () => {
    clearInterval(keepAlive);
    if (onSignal) { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); }
    if (onMessage) process.off('message', onMessage);
    process.off('SIGHUP', ignoreHup);
  };
  const stopped = new Promise<void>((resolve) => {
    // Run until signalled, even while nothing else holds the event loop open.
    keepAlive = setInterval(() => undefined, 1 << 30);
    let stopping = false;
    onSignal = (signal: NodeJS.Signals) => {
      // A second signal while live sessions finish (shutdownGrace) closes them now, still cleanly.
      if (stopping) {
        log.warn({ signal }, 'second signal: closing the live sessions now');
        app.hurry();
        return;
      }
      stopping = true;
      log.info({ signal }, 'gatehouse stopping');
      app.stop(signal).then(() => { unhook(); resolve(); }, (err) => {
        unhook();
        log.error({ err }, 'error while stopping');
        // The store may be what failed (PostgreSQL gone): its pool must not keep the process alive.
        void store.close().catch(() => undefined).finally(resolve);
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    if (worker) {
      // The primary reloads on SIGHUP; a terminal's hang-up reaching the whole group must not kill us.
      process.on('SIGHUP', ignoreHup);
      let retiring: NodeJS.Timeout | undefined;
      onMessage = (m: unknown) => {
        if (!isToWorker(m)) return;
        // The primary's stop may arrive with the same signal sent to the whole group (systemd,
        // Ctrl-C): the first of them stops, the others are the same request, not a hurry.
        if (m.gh === 'stop') { clearInterval(retiring); if (!stopping) onSignal!('SIGTERM'); }
        else if (m.gh === 'hurry') { if (stopping) app.hurry(); else onSignal!('SIGTERM'); }
        else if (m.gh === 'retire' && !stopping && retiring === undefined) {
          // Replaced by fresh workers (SIGHUP): accept nothing new, let every session end by itself.
          app.stopAccepting();
          // A fresh worker took housekeeping over: two would mirror the audit log twice, scan twice…
          void app.stopHousekeeping().catch((err: unknown) => log.warn({ err }, 'retiring: stopping housekeeping failed'));
          log.info({ sessions: app.ssh.live.size }, 'retiring: fresh workers accept new connections; this one exits after its last session');
          retiring = setInterval(() => {
            if (app.ssh.live.size === 0 && !stopping) { clearInterval(retiring); onSignal!('SIGHUP'); }
          }, 250);
        }
      };
      process.on('message', onMessage);
    }
  });
  let started: { ssh: string; web: string };
  try {
    started = await app.start();
  } catch (err) {
    // A start that fails (a port in use) must end the process and free the lock, not hang holding it.
    unhook();
    // A store with a connection pool (PostgreSQL) would keep the process alive after the failure.
    await store.close().catch(() => undefined);
    lock?.release();
    throw err;
  }
  const { ssh, web } = started;
  log.info({ ssh, web, dataDir: config.dataDir, created: dataDir.created, node: name, store: describeStore(config.store) }, 'gatehouse started');
  if (worker) {
    // The primary prints the banner once every worker listens.
    tellPrimary({ gh: 'ready', ssh, web });
    await stopped;
    log.info('gatehouse worker stopped');
    // The IPC channel to the primary would keep this process alive: hang it up, the exit follows.
    cluster.worker?.disconnect();
    return;
  }

  const lines = [`gatehouse: data in ${config.dataDir}${dataDir.created ? ' (created)' : ''}`, `gatehouse: ssh on ${ssh}`, `gatehouse: web UI on ${web}`];
  if (needsAdmin) {
    lines.push(
      '', 'Next steps (in another terminal, from this directory):',
      '  npx gatehouse user add admin --role admin --role operator',
      '  npx gatehouse user key add admin ~/.ssh/id_ed25519.pub',
      '  npx gatehouse user totp enroll admin',
      '  npx gatehouse host add web1 --address 10.0.0.5 --host-key "$(ssh-keyscan -t ed25519 10.0.0.5 | cut -d" " -f2-)"',
      '  npx gatehouse grant add --user admin --host web1 --login deploy',
      '  npx gatehouse key show   # put this line in deploy@web1:~/.ssh/authorized_keys',
    );
  }
  stderr.write(lines.join('\n') + '\n');

  await stopped;
  lock?.release();
  log.info('gatehouse stopped');
}
