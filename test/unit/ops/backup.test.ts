import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { draft } from '../../../src/audit/events.js';
import { dataPaths } from '../../../src/datadir/datadir.js';
import { createBackup, dataFiles } from '../../../src/ops/backup.js';
import { restoreArchive, verifyArchive } from '../../../src/ops/restore.js';
import { ManualClock } from '../../../src/shared/clock.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import { tempDir } from '../../helpers/cli.js';

const FAST = { N: 1 << 10, r: 8, p: 1 };
const PASS = Buffer.from('a passphrase long enough');

function dataDirWithFiles(): ReturnType<typeof dataPaths> {
  const paths = dataPaths(path.join(tempDir(), 'data'));
  fs.mkdirSync(paths.dir, { mode: 0o700 });
  for (const f of [paths.hostKey, paths.clientKey, paths.masterKey, path.join(paths.dir, 'user_ca_ed25519_key')]) fs.writeFileSync(f, `secret of ${path.basename(f)}\n`, { mode: 0o600 });
  fs.writeFileSync(paths.clientKeyPub, 'ssh-ed25519 AAAA gatehouse client key\n');
  fs.mkdirSync(paths.targetKeys, { mode: 0o700 });
  fs.writeFileSync(path.join(paths.targetKeys, '1'), 'target key\n', { mode: 0o600 });
  // Never copied as files: the live journals, the lock, leftovers, dot files, symlinks.
  for (const f of ['gatehouse.db-wal', 'gatehouse.db-shm', 'serve.lock', 'x.tmp', '.hidden']) fs.writeFileSync(path.join(paths.dir, f), 'no');
  // The per-node serve locks (cluster/lock.ts).
  fs.mkdirSync(path.join(paths.dir, 'locks'), { mode: 0o700 });
  fs.writeFileSync(path.join(paths.dir, 'locks', 'node-a.serve.lock'), 'no');
  fs.symlinkSync('/etc/passwd', path.join(paths.dir, 'link'));
  return paths;
}

describe('createBackup', () => {
  it('takes the keys and whatever else the server keeps, never the journals, the lock or a symlink', () => {
    const paths = dataDirWithFiles();
    expect(dataFiles(paths)).toEqual(['client_ed25519_key', 'client_ed25519_key.pub', 'master.key', 'ssh_host_ed25519_key', 'target_keys/1', 'user_ca_ed25519_key']);
  });

  it('a snapshot taken while another connection writes is consistent: the restored audit chain verifies', async () => {
    const paths = dataDirWithFiles();
    const clock = new ManualClock(Date.UTC(2026, 10, 30));
    const writer = createSqliteStore(paths.db, clock);
    for (let i = 0; i < 200; i++) await writer.audit.append(draft('server.stop', 'system', { signal: `before-${i}` }));
    const out = path.join(tempDir(), 'b.ghb');
    // Keep writing (another connection, as the server does) while the backup runs.
    let writing = true;
    let written = 0;
    const loop = (async () => {
      while (writing && written < 5000) {
        await writer.audit.append(draft('server.stop', 'system', { signal: `during-${written++}` }));
        await new Promise((r) => setImmediate(r));
      }
    })();
    const r = await createBackup({ paths, witness: paths.witness, out, passphrase: PASS, recordings: true, now: clock.now(), version: 'test', kdf: FAST });
    writing = false;
    await loop;
    writer.close();
    expect(r.manifest.database.auditEvents).toBeGreaterThanOrEqual(200);
    expect(r.manifest.files.map((f) => f.path)).toContain('gatehouse.db');
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['b.ghb']);

    const s = await verifyArchive(out, PASS);
    expect(s.files).toBe(r.manifest.files.length);
    const dir = path.join(tempDir(), 'restored');
    await restoreArchive(out, PASS, dir);
    expect(fs.readFileSync(path.join(dir, 'user_ca_ed25519_key'), 'utf8')).toBe('secret of user_ca_ed25519_key\n');
    expect(fs.existsSync(path.join(dir, 'serve.lock'))).toBe(false);
    const restored = createSqliteStore(path.join(dir, 'gatehouse.db'), clock);
    const v = await restored.audit.verify();
    expect(v.ok).toBe(true);
    expect((await restored.audit.head()).count).toBe(r.manifest.database.auditEvents);
    restored.close();
  });

  it('refuses a short passphrase, an existing --out, and a directory with no database', async () => {
    const paths = dataDirWithFiles();
    const noDb = { paths, witness: paths.witness, passphrase: PASS, recordings: true, now: 0, version: 't', kdf: FAST };
    await expect(createBackup({ ...noDb, out: path.join(tempDir(), 'x') })).rejects.toThrow(/no gatehouse database/);
    createSqliteStore(paths.db, new ManualClock(0)).close();
    await expect(createBackup({ ...noDb, out: path.join(tempDir(), 'x'), passphrase: Buffer.from('short') })).rejects.toThrow(/too short/);
    const taken = path.join(tempDir(), 'taken');
    fs.writeFileSync(taken, 'mine');
    await expect(createBackup({ ...noDb, out: taken })).rejects.toThrow(/already exists/);
    expect(fs.readFileSync(taken, 'utf8')).toBe('mine');
  });
});
