import Database from 'better-sqlite3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import { ManualClock } from '../../../src/shared/clock.js';
import { tempDir } from '../../helpers/cli.js';
import { admin } from '../../helpers/store.js';
import { forEachBackend } from './backends.js';

describe('hosts: how the bastion authenticates (auth key|cert)', () => {
  it('a host that existed before the migration keeps the static key', async () => {
    const file = path.join(tempDir(), 'gatehouse.db');
    const mine = MIGRATIONS.findIndex((m) => m.includes('ALTER TABLE hosts ADD COLUMN auth'));
    expect(mine).toBeGreaterThan(0);
    const db = new Database(file);
    for (let v = 0; v < mine; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${mine}`);
    db.prepare('INSERT INTO hosts (name, address, port, host_key, enabled, created_at, updated_at) VALUES (?, ?, ?, NULL, 1, 0, 0)').run('old1', '10.0.0.1', 22);
    db.close();
    const store = createSqliteStore(file, new ManualClock(0));
    expect((await store.hosts.get('old1'))!.auth).toBe('key');
    store.close();
  });
});

forEachBackend('hosts: auth key|cert in the store', (make) => {
  it('add defaults to key, takes cert; set switches and is audited; nothing else is stored', async () => {
    const { store, sql } = await make();
    const base = { address: '10.0.0.5', port: 22, groups: [], hostKey: null, hostKeyFingerprint: null };
    expect((await store.hosts.add({ name: 'a', ...base }, admin)).auth).toBe('key');
    expect((await store.hosts.add({ name: 'b', ...base, auth: 'cert' }, admin)).auth).toBe('cert');
    await store.hosts.setAuth('a', 'cert', admin);
    expect((await store.hosts.get('a'))!.auth).toBe('cert');
    await expect(store.hosts.setAuth('a', 'cert', admin)).rejects.toThrow(/already uses --auth cert/);
    await expect(store.hosts.setAuth('nope', 'cert', admin)).rejects.toThrow();
    await store.hosts.setAuth('a', 'key', admin);
    const events = (await store.audit.list({ type: 'admin.host.auth' })).map((e) => e.data);
    expect(events).toEqual([{ host: 'a', auth: 'cert', previous: 'key' }, { host: 'a', auth: 'key', previous: 'cert' }]);
    await store.close();
    await expect(sql("UPDATE hosts SET auth = 'password' WHERE name = 'a'")).rejects.toThrow(/CHECK|check constraint/);
  });
});
