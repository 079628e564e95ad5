import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gh, ghJson, ghOk } from '../helpers/cli.js';
import { postgresAvailable, sharedDatabases, type SharedDatabases } from '../helpers/postgres.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type World } from '../helpers/world.js';

interface SessionJson { id: string; user: string; host: string | null; live: boolean; endReason: string | null }

/**
 * The real binary on PostgreSQL: `gatehouse serve` and every CLI command reach the store through
 * GATEHOUSE_STORE (a URL with a password, which must never show). A stock ssh login with TOTP goes
 * through to a real sshd; the session, the audit chain and the recording live in PostgreSQL.
 */
describe.runIf(haveOpenSsh() && postgresAvailable())('gatehouse on a PostgreSQL store', () => {
  let server: SharedDatabases;
  let plainUrl: string;
  let w: World;
  let url: string;
  const password = 'pw-Zq81x';

  beforeAll(async () => {
    // An empty database of its own on the run's PostgreSQL (gatehouse migrates it on first use).
    server = await sharedDatabases();
    plainUrl = await server.create();
    // A password in the URL (trust auth ignores it): it must stay out of every output.
    const u = new URL(plainUrl);
    u.password = password;
    url = u.toString();
    process.env.GATEHOUSE_STORE = url;
    w = await startWorld();
  }, 240_000); // may wait for the run's PostgreSQL to come up
  afterAll(async () => {
    delete process.env.GATEHOUSE_STORE;
    await w?.stop();
    await server?.stop();
  }, 60_000);

  it('user add, grant add, a TOTP login through to the target, sessions list, verify: all on PostgreSQL', async () => {
    const op = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
    const r = await w.ssh(op, [`${w.login}@target1`, 'echo hello-from-target; uname -s']);
    expect(r.stderr).not.toMatch(/denied|refused/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hello-from-target');

    const sessions = await (async () => {
      for (let i = 0; i < 100; i++) {
        const s = ghJson<SessionJson[]>(w.data, ['sessions', 'list', '--user', 'alice']);
        if (s.length > 0 && !s[0]!.live) return s;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error('the session never ended in sessions list');
    })();
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toMatchObject({ user: 'alice', host: 'target1' });

    // The rows are in PostgreSQL, not in a SQLite file of the data directory.
    const c = new pg.Client({ connectionString: plainUrl });
    await c.connect();
    try {
      expect((await c.query('SELECT user_name, host_name FROM sessions')).rows).toEqual([{ user_name: 'alice', host_name: 'target1' }]);
      expect(Number((await c.query("SELECT count(*) AS n FROM audit_log WHERE type = 'session.start'")).rows[0].n)).toBe(1);
      expect(Number((await c.query("SELECT count(*) AS n FROM recordings WHERE state = 'closed'")).rows[0].n)).toBeGreaterThan(0);
    } finally { await c.end(); }
    expect(fs.existsSync(path.join(w.data, 'gatehouse.db'))).toBe(false);

    // verify: recordings (files in the data directory, rows in PostgreSQL), their chain, the audit chain.
    const v = gh(w.data, ['verify']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/chain of \d+ intact and signed/);
    expect(v.stdout).toMatch(/audit log: intact/);

    // A change from the CLI reaches the server: the disabled user cannot log in again.
    ghOk(w.data, ['user', 'disable', 'alice', '--reason', 'left']);
    const denied = await w.ssh(op, [`${w.login}@target1`, 'true']);
    expect(denied.code).not.toBe(0);

    // The password never reached the server's output or a CLI's.
    for (const text of [w.gatehouse.stdout(), w.gatehouse.stderr(), v.stdout, v.stderr]) expect(text).not.toContain(password);
  }, 120_000);

  it('PostgreSQL unreachable: the CLI fails with a clear message that names the store without its password', async () => {
    const bad = `postgres://gh:${password}@127.0.0.1:1/gatehouse`;
    const r = gh(w.data, ['user', 'list'], { env: { GATEHOUSE_STORE: bad } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/PostgreSQL/);
    expect(r.stderr).toContain('gh:***@127.0.0.1:1');
    expect(r.stdout + r.stderr).not.toContain(password);
  });

  it('backup and restore refuse a PostgreSQL store (they carry the SQLite file) and name pg_dump', () => {
    const r = gh(w.data, ['backup', '--out', path.join(w.dir, 'b.tar'), '--passphrase-file', '/dev/null']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/uses PostgreSQL/);
    expect(r.stderr).toMatch(/pg_dump/);
    expect(fs.existsSync(path.join(w.dir, 'b.tar'))).toBe(false);
  });
});
