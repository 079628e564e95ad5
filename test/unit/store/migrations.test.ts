import Database from 'better-sqlite3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '../../../src/store/sqlite/db.js';
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js';
import { tempDir } from '../../helpers/cli.js';

const schemaOf = (db: Database.Database) =>
  db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all();

describe('migrations', () => {
  it('creates every table on a fresh file, in WAL mode with foreign keys on', () => {
    const db = openDatabase(path.join(tempDir(), 'g.db'));
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
    for (const t of ['users', 'user_roles', 'ssh_keys', 'totp', 'user_groups', 'group_members', 'hosts', 'host_group_members', 'grants', 'sessions', 'channels', 'recordings', 'audit_log', 'meta']) {
      expect(tables).toContain(t);
    }
    db.close();
  });

  it('every table a policy depends on bumps the policy version on each kind of change, except TOTP step claims', () => {
    const db = openDatabase(path.join(tempDir(), 'g.db'));
    const triggers = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'policy_version_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    const all = (t: string) => ['insert', 'update', 'delete'].map((c) => `policy_version_${t}_${c}`);
    expect(triggers).toEqual([
      ...['users', 'user_roles', 'ssh_keys', 'user_groups', 'group_members', 'hosts', 'host_group_members', 'grants'].flatMap(all),
      'policy_version_session_kills_insert', 'policy_version_totp_insert', 'policy_version_totp_delete', 'policy_version_totp_secret',
    ].sort());
    const v = () => Number((db.prepare("SELECT value FROM meta WHERE key = 'policy_version'").get() as { value: string }).value);
    db.prepare("INSERT INTO users (name, created_at, updated_at) VALUES ('alice', 1, 1)").run();
    const afterUser = v();
    db.prepare("INSERT INTO totp (user_id, secret, created_at) VALUES (1, x'00', 1)").run();
    expect(v()).toBe(afterUser + 1);
    db.prepare('UPDATE totp SET last_step = 5 WHERE user_id = 1').run();
    expect(v()).toBe(afterUser + 1);
    db.close();
  });

  it('re-running is a no-op that keeps data and schema', () => {
    const file = path.join(tempDir(), 'g.db');
    const db = openDatabase(file);
    db.prepare("INSERT INTO users (name, created_at, updated_at) VALUES ('alice', 1, 1)").run();
    const before = schemaOf(db);
    expect(migrate(db)).toBe(MIGRATIONS.length);
    db.close();
    const again = openDatabase(file);
    expect(schemaOf(again)).toEqual(before);
    expect(again.prepare('SELECT name FROM users').all()).toEqual([{ name: 'alice' }]);
    again.close();
  });

  it('refuses a database from a newer gatehouse', () => {
    const file = path.join(tempDir(), 'g.db');
    const raw = new Database(file);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    expect(() => openDatabase(file)).toThrow(/newer than this gatehouse/);
  });

  it('enforces the grant shape: one who, one where', () => {
    const db = openDatabase(path.join(tempDir(), 'g.db'));
    db.prepare("INSERT INTO users (id, name, created_at, updated_at) VALUES (1, 'alice', 1, 1)").run();
    const bad = db.prepare("INSERT INTO grants (user_id, all_hosts, host_group, logins, rights, created_by, created_at) VALUES (1, 1, 'web', '[]', '[]', 't', 1)");
    expect(() => bad.run()).toThrow(/CHECK/);
    db.close();
  });
});
