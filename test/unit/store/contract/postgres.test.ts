import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../../src/config/load.js';
import { ManualClock } from '../../../../src/shared/clock.js';
import { openStore } from '../../../../src/store/open.js';
import { PG_MIGRATIONS } from '../../../../src/store/postgres/migrations.js';
import { createPostgresStore } from '../../../../src/store/postgres/index.js';
import type { Store } from '../../../../src/store/types.js';
import { tempDir } from '../../../helpers/cli.js';
import { postgresAvailable } from '../../../helpers/postgres.js';
import { admin, T0 } from '../../../helpers/store.js';
import { sharedCluster } from '../backends.js';

/** What only the PostgreSQL backend has: its migrations, LISTEN/NOTIFY, batch on one client, URLs with passwords. */
describe.skipIf(!postgresAvailable())('the PostgreSQL store', () => {
  // A cluster of its own: a test here stops and restarts PostgreSQL (the shared one must stay up).
  const cluster = sharedCluster({ own: true });
  const query = async <R = Record<string, unknown>>(url: string, sql: string, args: unknown[] = []) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try { return (await c.query(sql, args)).rows as R[]; } finally { await c.end(); }
  };
  const empty = async () => {
    const name = `e${Math.random().toString(36).slice(2, 10)}`;
    await query(cluster.server().urlOf('postgres'), `CREATE DATABASE ${name}`);
    return cluster.server().urlOf(name);
  };
  const open = (url: string) => cluster.track(createPostgresStore(url, new ManualClock(T0)));

  it('migrates an empty database once, also when two nodes start at the same moment', async () => {
    const url = await empty();
    const [a, b, c] = await Promise.all([open(url), open(url), open(url)]);
    const versions = await query<{ version: number }>(url, 'SELECT version FROM gatehouse_schema ORDER BY version');
    expect(versions.map((v) => v.version)).toEqual(PG_MIGRATIONS.map((_, i) => i + 1));
    await a.users.add('alice', ['admin'], admin);
    expect((await b.users.get('alice'))!.roles).toEqual(['admin']);
    expect(await c.users.anyAdmin()).toBe(true);
    // Re-opening is a no-op that keeps the data.
    const again = await open(url);
    expect((await again.users.list()).map((u) => u.name)).toEqual(['alice']);
    expect((await query(url, 'SELECT version FROM gatehouse_schema')).length).toBe(PG_MIGRATIONS.length);
  });

  it('refuses a database from a newer gatehouse', async () => {
    const url = await empty();
    await (await open(url)).close();
    await query(url, 'INSERT INTO gatehouse_schema (version, applied_at) VALUES ($1, 0)', [PG_MIGRATIONS.length + 1]);
    await expect(createPostgresStore(url, new ManualClock(T0))).rejects.toThrow(/newer than this gatehouse/);
  });

  it('the audit log is append-only; the grant shape and roles are checked by the schema', async () => {
    const url = await cluster.freshDatabase();
    const store = await open(url);
    await store.users.add('alice', ['operator'], admin);
    await expect(query(url, "UPDATE audit_log SET actor = 'mallory'")).rejects.toThrow(/append-only/);
    await expect(query(url, 'DELETE FROM audit_log')).rejects.toThrow(/append-only/);
    await expect(query(url, 'TRUNCATE audit_log')).rejects.toThrow(/append-only/);
    await expect(query(url, "INSERT INTO grants (user_id, all_hosts, host_group, logins, rights, created_by, created_at) VALUES (1, true, 'web', '[]', '[]', 't', 1)"))
      .rejects.toThrow(/check constraint/);
    await expect(query(url, "INSERT INTO user_roles (user_id, role) VALUES (1, 'root')")).rejects.toThrow(/check constraint/);
    expect((await store.audit.verify()).ok).toBe(true);
  });

  it('every table access depends on bumps the policy version, except TOTP step claims and sk counters', async () => {
    const url = await cluster.freshDatabase();
    const store = await open(url);
    const v = () => store.policy.version();
    let last = await v();
    const bumped = async (what: string, fn: () => Promise<unknown>) => {
      await fn();
      const now = await v();
      expect(now, what).toBeGreaterThan(last);
      last = now;
    };
    await bumped('user', () => store.users.add('alice', ['operator'], admin));
    await bumped('role', () => store.users.addRole('alice', 'auditor', admin));
    await bumped('key', () => store.keys.add('alice', [{ fingerprint: 'SHA256:a', type: 'ssh-ed25519', bits: 256, publicKey: 'ssh-ed25519 AAAA', comment: '' }], admin));
    await bumped('totp', () => store.totp.enroll('alice', () => Buffer.from('s'), false, admin));
    await bumped('group', () => store.groups.add('ops', admin));
    await bumped('member', () => store.groups.addMember('ops', 'alice', admin));
    await bumped('host', () => store.hosts.add({ name: 'web1', address: '10.0.0.1', port: 22, groups: ['web'], hostKey: null, hostKeyFingerprint: null }, admin));
    await bumped('host disable', () => store.hosts.setEnabled('web1', false, admin));
    await bumped('grant', () => store.grants.add({ who: { kind: 'user', name: 'alice' }, where: { kind: 'all' }, logins: ['root'], rights: ['shell'], until: null, reason: '' }, admin));
    await bumped('disable', () => store.users.setDisabled('alice', true, 'left', admin));
    await store.sessions.open({ id: 's1', user: 'alice', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    await bumped('kill', () => store.kills.request('s1', 'test', admin));
    const uid = (await store.users.get('alice'))!.id;
    await store.totp.claimStep(uid, 7);
    await store.keys.claimCounter('SHA256:a', 3);
    expect(await v()).toBe(last);
    await bumped('totp reset', () => store.totp.reset('alice', admin));
  });

  it('changes.subscribe hears a change committed by another node within a second, and after its connection is cut', async () => {
    const url = await cluster.freshDatabase();
    const a = await open(url);
    const b = await open(url);
    let heard = 0;
    const unsubscribe = b.changes!.subscribe(() => { heard++; });
    const waitFor = async (what: string, cond: () => boolean, ms = 5000) => {
      const until = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > until) throw new Error(`not heard in ${ms} ms: ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    // The LISTEN connection is up once the server lists it.
    for (let i = 0; i < 100; i++) {
      const n = await query<{ n: string }>(url, "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN%'");
      if (Number(n[0]!.n) > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const t = Date.now();
    await a.users.add('alice', ['operator'], admin);
    await waitFor('users.add', () => heard > 0, 1000);
    expect(Date.now() - t).toBeLessThan(1000);
    await a.sessions.open({ id: 's1', user: 'alice', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    const before = heard;
    await a.kills.request('s1', 'test', admin);
    await waitFor('kill', () => heard > before, 1000);
    // A TOTP claim is not a change anyone needs to hear about; a rolled-back change is never heard.
    const beforeEnroll = heard;
    await a.totp.enroll('alice', () => Buffer.from('s'), false, admin);
    await waitFor('enroll', () => heard > beforeEnroll, 1000);
    const quiet = heard;
    await a.totp.claimStep((await a.users.get('alice'))!.id, 9);
    await expect(a.batch(async () => { await a.users.add('bob', ['operator'], admin); throw new Error('abort'); })).rejects.toThrow('abort');
    await new Promise((r) => setTimeout(r, 300));
    expect(heard).toBe(quiet);
    // The listener's connection is cut (PostgreSQL restarted, a proxy dropped it): it comes back by
    // itself, tells its subscribers once (they re-check), and hears the next change.
    await query(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'");
    await waitFor('reconnect', () => heard > quiet, 5000);
    const after = heard;
    await a.users.add('carol', ['operator'], admin);
    await waitFor('after reconnect', () => heard > after, 5000);
    unsubscribe();
  });

  it('batch: every call inside runs in one transaction, unseen by other nodes until it commits, undone on error', async () => {
    const url = await cluster.freshDatabase();
    const a = await open(url);
    const b = await open(url);
    let seenInside: number | null = null;
    await a.batch(async () => {
      for (let i = 0; i < 20; i++) await a.users.add(`u${i}`, ['operator'], admin);
      seenInside = (await b.users.list()).length;
      expect((await a.users.list()).length).toBe(20);
    });
    expect(seenInside).toBe(0);
    expect((await b.users.list()).length).toBe(20);
    await expect(a.batch(async () => {
      await a.users.add('ghost', ['operator'], admin);
      await a.users.add('u1', ['operator'], admin);
    })).rejects.toThrow(/already exists/);
    expect(await b.users.get('ghost')).toBeNull();
    expect((await b.audit.verify())).toMatchObject({ ok: true, rows: 20 });
  });

  it('text that PostgreSQL cannot store (NUL) is indexed and searchable, never a failed write', async () => {
    const store = await open(await cluster.freshDatabase());
    await store.sessions.open({ id: 's1', user: 'alice', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    await store.sessions.openChannel({ sessionId: 's1', channel: 0, kind: 'exec', command: 'echo \0 hidden', pty: false, host: 'web1', login: 'root' });
    await store.search.index('s1', 0, [{ t: 1, text: 'before\0after needle' }]);
    expect((await store.sessions.query({ text: 'needle', limit: 10, offset: 0 })).total).toBe(1);
    expect((await store.sessions.channels('s1'))[0]!.command).toBe('echo \uFFFD hidden');
  });

  it('a URL password never reaches an error or a config message', async () => {
    const secret = 'S3cr3t-pw';
    // Nothing listens on port 1.
    const bad = `postgres://gh:${secret}@127.0.0.1:1/nope`;
    const err = await createPostgresStore(bad, new ManualClock(T0)).then(() => null, (e: Error) => e);
    expect(err).not.toBeNull();
    expect(`${err!.message} ${(err as { hint?: string }).hint ?? ''}`).not.toContain(secret);
    expect(err!.message).toContain('gh:***@127.0.0.1:1');
    // The config takes the URL from GATEHOUSE_STORE, refuses other schemes without echoing them.
    const dir = tempDir();
    expect(loadConfig({ data: dir }, { GATEHOUSE_STORE: bad }).store).toBe(bad);
    expect(loadConfig({ data: dir }, {}).store).toBe('sqlite');
    expect(() => loadConfig({ data: dir }, { GATEHOUSE_STORE: `mysql://root:${secret}@db/x` })).toThrow(/store: expected "sqlite" or a URL/);
    try { loadConfig({ data: dir }, { GATEHOUSE_STORE: `mysql://root:${secret}@db/x` }); } catch (e) { expect((e as Error).message).not.toContain(secret); }
  });

  it('openStore picks the backend from the config', async () => {
    const url = await cluster.freshDatabase();
    const dir = tempDir();
    const paths = { paths: { db: path.join(dir, 'gatehouse.db') } } as Parameters<typeof openStore>[0]['dataDir'];
    const stores: Store[] = [];
    try {
      const p = await openStore({ config: { store: url }, dataDir: paths, clock: new ManualClock(T0) });
      stores.push(p);
      expect(p.changes).toBeDefined();
      await p.users.add('alice', ['admin'], admin);
      expect((await query(url, 'SELECT name FROM users')).map((r) => r.name)).toEqual(['alice']);
      const s = await openStore({ config: { store: 'sqlite' }, dataDir: paths, clock: new ManualClock(T0) });
      stores.push(s);
      expect(s.changes).toBeUndefined();
      expect(await s.users.get('alice')).toBeNull();
    } finally {
      for (const s of stores) await s.close();
    }
  });

  // Last in the file: it stops the shared cluster for a moment.
  it('PostgreSQL goes away and comes back: calls fail meanwhile, then the same store object works again and its listener is back', async () => {
    const url = await cluster.freshDatabase();
    const store = await open(url);
    await store.users.add('alice', ['operator'], admin);
    let heard = 0;
    const unsubscribe = store.changes!.subscribe(() => { heard++; });
    for (let i = 0; i < 100 && Number((await query<{ n: string }>(url, "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"))[0]!.n) === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // The test cluster runs with synchronous_commit off: a commit may sit in WAL buffers when an
    // immediate stop comes. A checkpoint writes it out, so what the store committed is there after.
    await query(url, 'CHECKPOINT');
    await cluster.server().kill();
    await expect(store.users.list()).rejects.toThrow();
    await cluster.server().restart();
    let users: string[] = [];
    // Bounded, but generous: on a loaded two-core CI machine the pool's reconnect has taken over 5 s.
    for (let i = 0; i < 300; i++) {
      try { users = (await store.users.list()).map((u) => u.name); break; } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    expect(users).toEqual(['alice']);
    // The listener reconnects by itself and tells its subscriber once (what happened meanwhile is unknown).
    for (let i = 0; i < 300 && heard === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(heard).toBeGreaterThan(0);
    unsubscribe();
  });
});

describe('naming a PostgreSQL store', () => {
  it('never shows the password, whatever the URL looks like', async () => {
    const { describeStore } = await import('../../../../src/store/open.js');
    expect(describeStore('sqlite')).toBe('sqlite');
    expect(describeStore('postgres://gh@db:5432/g')).toBe('postgres://gh@db:5432/g');
    expect(describeStore('postgres://gh:p%40ss@db:5432/g')).toBe('postgres://gh:***@db:5432/g');
    expect(describeStore('postgresql://u:pw@[::1]:5432/g?sslmode=require')).toBe('postgresql://u:***@[::1]:5432/g?sslmode=require');
    // Not a URL the parser takes: the part between ':' and '@' still goes.
    expect(describeStore('postgres://u:se cret@@db/g')).not.toContain('se cret');
    // pg also reads secrets from parameters.
    const params = describeStore('postgres://u@db/g?password=hunter2&sslpassword=kpass&sslkey=/k&sslmode=require');
    for (const secret of ['hunter2', 'kpass', '/k']) expect(params).not.toContain(secret);
    expect(params).toContain('sslmode=require');
  });
});
