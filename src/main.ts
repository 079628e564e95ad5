import { createGatehouse } from './app.js';
import { loadConfig, type ConfigFlags } from './config/load.js';
import { openDataDir, preparePrivateFile } from './datadir/datadir.js';
import { acquireServeLock } from './datadir/lock.js';
import { systemClock } from './shared/clock.js';
import { randomIds } from './shared/ids.js';
import { createLogger } from './shared/logger.js';
import { createSqliteStore } from './store/sqlite/index.js';

/**
 * Composition root: config → data dir → store → deps → start; signals stop it. Human-readable
 * start-up text goes to stderr; stdout carries only the JSON log.
 */
export async function serve(flags: ConfigFlags & { benchNoRecording?: boolean }, stderr: NodeJS.WriteStream = process.stderr): Promise<void> {
  const config = loadConfig(flags);
  const log = createLogger({ level: config.log.level, format: config.log.format, tty: process.stdout.isTTY === true });
  // A background write that fails (an audit row, a recording row) must be seen, not take the
  // bastion and every live session down with it.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled failure in a background task'));
  const dataDir = openDataDir(config.dataDir);
  // Before anything reads or repairs state: a second server would close the first one's live sessions.
  const lock = acquireServeLock(dataDir.paths.lock, systemClock.now());
  preparePrivateFile(dataDir.paths.db);
  const store = createSqliteStore(dataDir.paths.db, systemClock);
  if (flags.benchNoRecording) {
    // Only `npm run bench` uses this, to measure what recording costs. Never in production.
    log.warn('BENCHMARK MODE: sessions are NOT recorded and sftp files not audited (--bench-no-recording)');
    stderr.write('gatehouse: WARNING: --bench-no-recording: sessions are not recorded, sftp files not audited (benchmark use only)\n');
  }
  const app = createGatehouse({ config, dataDir, store, clock: systemClock, log, ids: randomIds },
    flags.benchNoRecording ? async () => [] : undefined, { fileAudit: !flags.benchNoRecording });
  const needsAdmin = !(await store.users.anyAdmin());
  // Signals are handled from before the first line is printed, so a quick SIGINT still stops cleanly.
  let keepAlive: NodeJS.Timeout | undefined;
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  const unhook = () => {
    clearInterval(keepAlive);
    if (onSignal) { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); }
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
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  let started: { ssh: string; web: string };
  try {
    started = await app.start();
  } catch (err) {
    // A start that fails (a port in use) must end the process and free the lock, not hang holding it.
    unhook();
    lock.release();
    throw err;
  }
  const { ssh, web } = started;
  log.info({ ssh, web, dataDir: config.dataDir, created: dataDir.created }, 'gatehouse started');

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
  lock.release();
  log.info('gatehouse stopped');
}
