import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { openDataDir } from '../../../src/datadir/datadir.js';
import { LiveHub } from '../../../src/recorder/livehub.js';
import { ManualClock } from '../../../src/shared/clock.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import { createWebServer } from '../../../src/web/server.js';
import { tempDir } from '../../helpers/cli.js';

/**
 * web.metricsTokenEnv names the variable holding the /metrics bearer token. A name that is unset
 * (or holds a token too short to resist guessing) must stop the web UI from starting: serving the
 * per-host gauges with no token, or with an empty one, would publish which hosts are unpatched.
 */
const VAR = 'GH_UNIT_METRICS_TOKEN';

describe('web.metricsTokenEnv', () => {
  const dirs: string[] = [];
  afterEach(() => {
    delete process.env[VAR];
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  async function start(): Promise<() => Promise<void>> {
    const dir = tempDir('gatehouse-metrics-token-');
    dirs.push(dir);
    const dataDir = openDataDir(path.join(dir, 'data'));
    const clock = new ManualClock(Date.UTC(2026, 10, 30, 12, 0, 0));
    const store = createSqliteStore(dataDir.paths.db, clock);
    const loaded = loadConfig({ data: path.join(dir, 'data') }, {});
    const config = { ...loaded, web: { ...loaded.web, metricsTokenEnv: VAR } };
    try {
      const app = await createWebServer({ config, store, clock, log: silentLogger(), dataDir, hub: new LiveHub(), liveCount: () => 0, liveBytes: () => 0 });
      return async () => { await app.close(); await store.close(); };
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  it('refuses to start when the named variable is unset, naming the variable and not a token', async () => {
    delete process.env[VAR];
    await expect(start()).rejects.toThrow(new RegExp(`${VAR} must hold the /metrics bearer token`));
  });

  it('refuses a token shorter than 16 characters, without echoing it', async () => {
    process.env[VAR] = 'short-secret';
    const err = await start().then(() => null, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/16 characters or more/);
    expect(err?.message).not.toContain('short-secret');
  });

  it('starts with a long enough token', async () => {
    process.env[VAR] = 'a'.repeat(32);
    const stop = await start();
    await stop();
  });
});
