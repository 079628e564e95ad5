import { execFileSync } from 'node:child_process';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { openDataDir } from '../../../src/datadir/datadir.js';
import { LiveHub } from '../../../src/recorder/livehub.js';
import { systemClock } from '../../../src/shared/clock.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import { createWebServer } from '../../../src/web/server.js';
import { tempDir } from '../../helpers/cli.js';
import fs from 'node:fs';

function get(port: number, p: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: p, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

describe('web UI over TLS', () => {
  it('serves HTTPS with web.tls and marks the session cookie Secure', async () => {
    const dir = tempDir();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    const cfg = path.join(dir, 'g.yaml');
    fs.writeFileSync(cfg, `dataDir: ./data\nweb:\n  listen: "127.0.0.1:8443"\n  tls: { cert: cert.pem, key: key.pem }\n`);
    const config = loadConfig({ config: cfg }, {});
    const dataDir = openDataDir(config.dataDir);
    const store = createSqliteStore(dataDir.paths.db, systemClock);
    const app = await createWebServer({ config, store, clock: systemClock, log: silentLogger(), dataDir, hub: new LiveHub(), liveCount: () => 0, liveBytes: () => 0 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (app.server.address() as AddressInfo).port;
      expect((await get(port, '/healthz')).body).toBe('{"status":"ok"}');
      const login = await get(port, '/login');
      expect(String(login.headers['set-cookie'])).toMatch(/; Secure/);
      expect(String(login.headers['strict-transport-security'])).toMatch(/max-age=/);
    } finally {
      await app.close();
      store.close();
    }
  });

  it('refuses to start on an unreadable TLS file and names the key', async () => {
    const dir = tempDir();
    const cfg = path.join(dir, 'g.yaml');
    fs.writeFileSync(cfg, `dataDir: ./data\nweb:\n  tls: { cert: missing.pem, key: missing.key }\n`);
    const config = loadConfig({ config: cfg }, {});
    const dataDir = openDataDir(config.dataDir);
    const store = createSqliteStore(dataDir.paths.db, systemClock);
    try {
      await expect(createWebServer({ config, store, clock: systemClock, log: silentLogger(), dataDir, hub: new LiveHub(), liveCount: () => 0, liveBytes: () => 0 }))
        .rejects.toThrow(/web\.tls\.cert: cannot read .*missing\.pem \(ENOENT\)/);
    } finally {
      store.close();
    }
  });
});
