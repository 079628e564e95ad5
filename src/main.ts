import { createGatehouse } from './app.js';
import { loadConfig, type ConfigFlags } from './config/load.js';
import { openDataDir, preparePrivateFile } from './datadir/datadir.js';
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
  const log = createLogger({ level: config.log.level });
  // A background write that fails (an audit row, a recording row) must be seen, not take the
  // bastion and every live session down with it.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled failure in a background task'));
  const dataDir = openDataDir(config.dataDir);
  preparePrivateFile(dataDir.paths.db);
  const store = createSqliteStore(dataDir.paths.db, systemClock);
  if (flags.benchNoRecording) {
    // Only `npm run bench` uses this, to measure what recording costs. Never in production.
    log.warn('BENCHMARK MODE: sessions are NOT recorded (--bench-no-recording)');
    stderr.write('gatehouse: WARNING: --bench-no-recording: sessions are not recorded (benchmark use only)\n');
  }
  const app = createGatehouse({ config, dataDir, store, clock: systemClock, log, ids: randomIds }, flags.benchNoRecording ? async () => [] : undefined);
  const needsAdmin = !(await store.users.anyAdmin());
  // Signals are handled from before the first line is printed, so a quick SIGINT still stops cleanly.
  const stopped = new Promise<void>((resolve) => {
    // Run until signalled, even while nothing else holds the event loop open.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const stop = (signal: NodeJS.Signals) => {
      clearInterval(keepAlive);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log.info({ signal }, 'gatehouse stopping');
      app.stop(signal).then(resolve, (err) => {
        log.error({ err }, 'error while stopping');
        resolve();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  const { ssh, web } = await app.start();
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
  log.info('gatehouse stopped');
}
