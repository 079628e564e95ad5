import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghAsync as ghAsyncBounded, tempDir } from '../helpers/cli.js';
import { postgresAvailable, startPostgres, type Postgres } from '../helpers/postgres.js';
import { startS3, type S3Server } from '../helpers/s3.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * `gatehouse migrate`, end to end with the built binary: a SQLite data directory made by the real CLI
 * and a real recorded ssh session is copied into a throw-away PostgreSQL cluster, its recordings into
 * s3rver; then the server runs on the copy and the same operator logs in with the copied key and TOTP.
 */
const PREFIX = 'moved/';

/** The binary, asynchronously (two migrations racing). */
/** The spawned CLI with a generous timeout: on a loaded machine a migration took longer than 30 s. */
const ghAsync = (data: string, args: string[], env: NodeJS.ProcessEnv = {}) => ghAsyncBounded(data, args, { env, timeoutMs: 240_000 });

/** ghOk with the generous timeout above: on a loaded machine a CLI command can take longer than gh's 30 s. */
async function ghOkAsync(data: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await ghAsync(data, args, env);
  if (r.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(sql)).rows;
  } finally {
    await c.end();
  }
}

/** Rows per table in the target, or {} when it has no schema yet. */
async function targetCounts(url: string, tables: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const have = new Set((await query<{ t: string }>(url, "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public'")).map((r) => r.t));
  for (const t of tables) if (have.has(t)) out[t] = Number((await query<{ n: string }>(url, `SELECT count(*) AS n FROM ${t}`))[0]!.n);
  return out;
}

function sqliteCounts(file: string, tables: string[]): Record<string, number> {
  const db = new Database(file, { readonly: true });
  try {
    return Object.fromEntries(tables.map((t) => [t, (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n]));
  } finally {
    db.close();
  }
}

function treeDigest(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else out[path.relative(root, f)] = createHash('sha256').update(fs.readFileSync(f)).digest('hex');
    }
  };
  if (fs.existsSync(root)) walk(root);
  return out;
}

const CORE = ['users', 'user_roles', 'ssh_keys', 'totp', 'user_groups', 'group_members', 'hosts', 'grants', 'sessions', 'channels', 'recordings', 'audit_log'];

describe.runIf(haveOpenSsh() && postgresAvailable())('gatehouse migrate: SQLite → PostgreSQL (+ recordings → S3)', () => {
  let server: Postgres;
  let s3: S3Server;
  let w: World;
  let alice: Operator;
  let s3Config: string;
  let firstLoginAt = 0;
  const saved = { ...process.env };
  const dbUrl = (name: string) => server.urlOf(name);
  const createDb = async (name: string) => { await query(server.url, `CREATE DATABASE ${name}`); return dbUrl(name); };

  beforeAll(async () => {
    [server, s3] = await Promise.all([startPostgres(), startS3({ bucket: 'gh-moved' })]);
    Object.assign(process.env, s3.env);
    w = await startWorld();
    s3Config = path.join(w.dir, 's3.yaml');
    fs.writeFileSync(s3Config, `shutdownGrace: 1s\n${s3.config(PREFIX)}`);
    alice = w.operator('alice');
    await ghOkAsync(w.data, ['group', 'add', 'ops']);
    await ghOkAsync(w.data, ['group', 'member', 'add', 'ops', 'alice']);
    await ghOkAsync(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login, '--reason', 'migrate test']);
    const r = await w.ssh(alice, [`${w.login}@target1`, 'echo recorded-before-the-move'], { timeoutMs: 120_000 });
    firstLoginAt = Date.now();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('recorded-before-the-move');
  }, 180_000);
  afterAll(async () => {
    process.env = saved;
    await w?.stop();
    await Promise.all([server?.stop(), s3?.stop()]);
  }, 60_000);

  it('refuses while gatehouse serves on the data directory, and copies nothing', async () => {
    const url = await createDb('while_serving');
    const r = await ghAsync(w.data, ['migrate', '--to', url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/another gatehouse server .* holds the data directory lock/);
    expect(await targetCounts(url, ['users', 'audit_log'])).toEqual({});
  }, 60_000);

  it('copies every table, the audit chain with its hashes and the recordings, verifies them, and leaves the SQLite side as it was', async () => {
    await w.gatehouse.stop();
    // Sessions end when the server stops: the rows to compare are final now.
    const before = sqliteCounts(path.join(w.data, 'gatehouse.db'), CORE);
    const recBefore = treeDigest(path.join(w.data, 'recordings'));
    expect(Object.keys(recBefore).some((f) => f.endsWith('.cast'))).toBe(true);
    const url = await createDb('moved');
    const r = await ghAsync(w.data, ['migrate', '--to', url, '--recordings', 's3', '--config', s3Config], s3.env);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/migrate: OK/);
    expect(r.stdout).toMatch(/the same head as the SQLite store/);
    for (const t of CORE) expect(r.stdout).toMatch(new RegExp(`^${t}\\s+${before[t]}\\s+${before[t]}\\s+ok$`, 'm'));

    // Row for row in PostgreSQL, the audit chain with the very same ids and hashes, then one event
    // of the new store's own: admin.migrate, chained to the copied head.
    const after = { ...before, audit_log: before.audit_log! + 1 };
    expect(await targetCounts(url, CORE)).toEqual(after);
    const src = new Database(path.join(w.data, 'gatehouse.db'), { readonly: true });
    const srcAudit = src.prepare('SELECT id, hash, prev_hash FROM audit_log ORDER BY id').all();
    const srcTotp = src.prepare('SELECT hex(secret) AS s, last_step FROM totp ORDER BY user_id').all() as { s: string; last_step: number }[];
    src.close();
    const pgAudit = (await query<{ id: string; hash: string; prev_hash: string }>(url, 'SELECT id, hash, prev_hash FROM audit_log ORDER BY id')).map((x) => ({ ...x, id: Number(x.id) }));
    expect(pgAudit.slice(0, -1)).toEqual(srcAudit);
    const [row] = await query<{ id: string; type: string; actor: string; data: string; prev_hash: string }>(url, 'SELECT id, type, actor, data, prev_hash FROM audit_log ORDER BY id DESC LIMIT 1');
    const moved = { ...row!, data: JSON.parse(row!.data) as Record<string, unknown> };
    expect(moved.prev_hash).toBe((srcAudit.at(-1) as { hash: string }).hash);
    expect(moved).toMatchObject({ type: 'admin.migrate', actor: expect.stringMatching(/^cli:/) });
    expect(moved.data).toMatchObject({ to: url, auditRows: before.audit_log, head: (srcAudit.at(-1) as { hash: string }).hash, recordingsUploaded: Object.keys(recBefore).length });
    expect(r.stdout).toMatch(new RegExp(`admin.migrate appended to the new store as event #${moved.id}`));
    const pgTotp = await query<{ s: string; last_step: string }>(url, "SELECT upper(encode(secret, 'hex')) AS s, last_step FROM totp ORDER BY user_id");
    expect(pgTotp.map((x) => ({ s: x.s, last_step: Number(x.last_step) }))).toEqual(srcTotp);

    // Every local file is an object under the prefix, byte for byte; the local copies are untouched.
    const listed = await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: PREFIX }));
    const keys = (listed.Contents ?? []).map((o) => o.Key!).sort();
    expect(keys).toEqual(Object.keys(recBefore).map((f) => PREFIX + f.split(path.sep).join('/')).sort());
    for (const [rel, sha] of Object.entries(recBefore)) {
      const o = await s3.client().send(new GetObjectCommand({ Bucket: s3.bucket, Key: PREFIX + rel }));
      expect(createHash('sha256').update(Buffer.from(await o.Body!.transformToByteArray())).digest('hex')).toBe(sha);
    }
    expect(treeDigest(path.join(w.data, 'recordings'))).toEqual(recBefore);
    expect(sqliteCounts(path.join(w.data, 'gatehouse.db'), CORE)).toEqual(before);
    expect(fs.readdirSync(w.data).filter((f) => f.startsWith('.migrate-spool-'))).toEqual([]);

    // A second run against the now full database refuses and changes nothing.
    const again = await ghAsync(w.data, ['migrate', '--to', url, '--recordings', 's3', '--config', s3Config], s3.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is not empty \(rows in .*audit_log/);
    expect(await targetCounts(url, CORE)).toEqual(after);

    // gatehouse verify on the new setup agrees, reading the recordings from the bucket.
    const v = await ghAsync(w.data, ['verify', '--config', s3Config], { ...s3.env, GATEHOUSE_STORE: url });
    expect(v.code, v.stdout + v.stderr).toBe(0);

    // The server on the copy: alice logs in with the copied key and the copied (sealed) TOTP secret.
    // The copied last_step still holds her first code: wait for the next 30-second step.
    const step = Math.floor(firstLoginAt / 30_000);
    while (Math.floor(Date.now() / 30_000) <= step) await new Promise((res) => setTimeout(res, 500));
    process.env.GATEHOUSE_STORE = url;
    try {
      await w.restart();
      const r2 = await w.ssh(alice, [`${w.login}@target1`, 'echo after-the-move'], { timeoutMs: 120_000 });
      expect(r2.code, r2.stderr).toBe(0);
      expect(r2.stdout).toContain('after-the-move');
      const sessions = JSON.parse(await ghOkAsync(w.data, ['sessions', 'list', '--user', 'alice', '--json'])) as { user: string }[];
      expect(sessions.length).toBe((before.sessions ?? 0) + 1);
      // New rows continue after the copied ids (the identities were moved past them).
      await ghOkAsync(w.data, ['user', 'add', 'zed']);
      await ghOkAsync(w.data, ['group', 'add', 'ops2']);
      await ghOkAsync(w.data, ['grant', 'add', '--user', 'zed', '--host', 'target1', '--login', w.login]);
    } finally {
      await w.gatehouse.stop();
      delete process.env.GATEHOUSE_STORE;
    }
  }, 240_000);

  it('a tampered audit row in the SQLite store is refused before anything is copied', async () => {
    const dir = tempDir('gatehouse-migrate-');
    const data = path.join(dir, 'data');
    await ghOkAsync(data, ['user', 'add', 'bob']);
    await ghOkAsync(data, ['user', 'add', 'carol']);
    const db = new Database(path.join(data, 'gatehouse.db'));
    // What an attacker with the file does: the append-only trigger is only a trigger.
    db.exec('DROP TRIGGER audit_log_no_update');
    db.prepare("UPDATE audit_log SET actor = 'cli:nobody' WHERE id = 1").run();
    db.close();
    const url = await createDb('tampered');
    const r = await ghAsync(data, ['migrate', '--to', url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit log is BROKEN at event #1/);
    expect(await targetCounts(url, ['users', 'audit_log'])).toEqual({});
  }, 60_000);

  it('two migrations racing into one empty database: exactly one copies, the other refuses', async () => {
    const datas = await Promise.all(['a', 'b'].map(async (n) => {
      const data = path.join(tempDir('gatehouse-migrate-'), 'data');
      await ghOkAsync(data, ['user', 'add', `user-${n}`]);
      return data;
    }));
    const url = await createDb('raced');
    const results = await Promise.all(datas.map((d) => ghAsync(d, ['migrate', '--to', url])));
    expect(results.map((x) => x.code).sort()).toEqual([0, 1]);
    const loser = results.find((x) => x.code === 1)!;
    expect(loser.stderr).toMatch(/is not empty/);
    const users = await query<{ name: string }>(url, 'SELECT name FROM users');
    expect(users).toHaveLength(1);
  }, 120_000);

  it('a copy whose check fails gets no admin.migrate event: a forged witness line', async () => {
    const dir = tempDir('gatehouse-migrate-');
    const data = path.join(dir, 'data');
    await ghOkAsync(data, ['user', 'add', 'erin']);
    await ghOkAsync(data, ['user', 'add', 'finn']);
    const file = path.join(data, 'witness.log');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const n = lines.length - 2; // the newest line (the file ends with a newline)
    // Its time moved back a millennium: no longer what the host key signed.
    lines[n] = lines[n]!.replace(/"at":"2/, '"at":"1');
    fs.writeFileSync(file, lines.join('\n'));
    const rows = sqliteCounts(path.join(data, 'gatehouse.db'), ['audit_log']).audit_log!;
    const url = await createDb('forged_witness');
    const r = await ghAsync(data, ['migrate', '--to', url, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as { ok: boolean; witness: { ok: boolean }; event: number | null };
    expect(out).toMatchObject({ ok: false, witness: { ok: false }, event: null });
    // The copy is there (the README says to drop it), and nothing was added to its chain.
    expect((await targetCounts(url, ['audit_log'])).audit_log).toBe(rows);
    expect(await query(url, "SELECT id FROM audit_log WHERE type = 'admin.migrate'")).toEqual([]);
  }, 120_000);

  it('an upload that cannot finish keeps nothing in PostgreSQL (and a run again starts clean)', async () => {
    const dir = tempDir('gatehouse-migrate-');
    const data = path.join(dir, 'data');
    await ghOkAsync(data, ['user', 'add', 'dave']);
    // A recording file left by the recorder's directory layout: something to upload.
    fs.mkdirSync(path.join(data, 'recordings', '2026', '11', '30'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(data, 'recordings', '2026', '11', '30', 'x-0.cast'), '{"version":2}\n');
    const dead = path.join(dir, 'dead-s3.yaml');
    // Nothing listens there: every upload attempt fails.
    fs.writeFileSync(dead, s3.config(PREFIX).replace(/endpoint: \S+/, 'endpoint: http://127.0.0.1:9'));
    // A password in the URL (trust auth ignores it) must never be printed.
    const u = new URL(await createDb('interrupted'));
    u.password = 'pw-Secret-77q';
    const url = u.toString();
    const r = await ghAsync(data, ['migrate', '--to', url, '--recordings', 's3', '--config', dead, '--upload-timeout', '3'], s3.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/were not confirmed .*nothing was kept in PostgreSQL/);
    expect(r.stdout + r.stderr).not.toContain('pw-Secret-77q');
    const counts = await targetCounts(url, ['users', 'audit_log']);
    expect(counts).toEqual({ users: 0, audit_log: 0 });
    const ok = await ghAsync(data, ['migrate', '--to', url]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect((await targetCounts(url, ['users'])).users).toBe(1);
    expect(ok.stdout).toMatch(/copied into postgres:\/\/gh:\*\*\*@/);
    expect(ok.stdout + ok.stderr).not.toContain('pw-Secret-77q');
    // The new store's admin.migrate event names the target without its password too.
    const events = await query<{ data: string }>(url, "SELECT data FROM audit_log WHERE type = 'admin.migrate'");
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0]!.data).to).toMatch(/^postgres:\/\/gh:\*\*\*@/);
    expect(events[0]!.data).not.toContain('pw-Secret-77q');
  }, 120_000);
});
