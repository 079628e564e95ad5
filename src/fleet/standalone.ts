import { hostname } from 'node:os';
import { Gate } from '../auth/admit.js';
import type { Config } from '../config/schema.js';
import type { DataDir } from '../datadir/datadir.js';
import { channelObservers } from '../observers.js';
import { TargetAuth } from '../proxy/targetauth.js';
import { createRecorderFactory } from '../recorder/recorder.js';
import { createRecordingStorage } from '../recorder/storage/index.js';
import { highResClock, type Clock } from '../shared/clock.js';
import { randomIds } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import { Offload } from '../shared/offload.js';
import type { Store } from '../store/types.js';
import type { ScanDeps } from './scan.js';

/**
 * The scanner's dependencies outside the server (`gatehouse fleet scan`): the same gate, dialer
 * keys, recorder, storage and observers the server builds in app.ts, so a scan from the CLI is
 * admitted, dialed and recorded exactly like one from the server's schedule. `fn` runs with them;
 * afterwards the recordings are closed and the writing thread stopped.
 */
export async function withScanner<T>(
  o: { config: Config; dataDir: DataDir; store: Store; clock: Clock; log: Logger },
  fn: (deps: ScanDeps) => Promise<T>,
): Promise<T> {
  const { config, dataDir, store, clock, log } = o;
  const offload = new Offload();
  await offload.start();
  const storage = createRecordingStorage(config, dataDir, { log });
  const recorder = createRecorderFactory({ config, store, clock: highResClock, log, root: dataDir.paths.recordings, storage, hostKey: dataDir.hostKey, offload });
  try {
    return await fn({
      config, store, clock, log, ids: randomIds, gate: new Gate({ store }), clientKey: dataDir.clientKey, node: hostname(),
      observers: channelObservers({ store, log, recorder, offload }),
      targetAuth: new TargetAuth({ caDir: dataDir.paths.dir, clientKey: dataDir.clientKey, clock, certificateTtlMs: config.targets.certificateTtl, sourceAddresses: config.targets.sourceAddresses }),
    });
  } finally {
    await recorder.idle(10_000);
    await offload.stop();
    await storage.stop(30_000);
  }
}
