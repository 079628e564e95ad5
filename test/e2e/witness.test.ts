import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

type AuditRow = { id: number; type: string; data: Record<string, unknown> };

/**
 * Issue 12, hole 4: someone who can write the database removes the newest session: its recording
 * row (the chain rolled back one row, its head with it), its file and the audit tail. Every chain
 * inside the database still links up; only the signed checkpoints in the witness, outside the
 * database, show what is gone.
 */
function castFile(data: string, sessionId: string): string {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.startsWith(`${sessionId}-`)) found.push(path.join(d, e.name));
    }
  };
  walk(path.join(data, 'recordings'));
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** The attack, on the real SQLite file with the server stopped. */
function removeNewestSession(data: string, sid: string): void {
  fs.unlinkSync(castFile(data, sid));
  const db = new Database(path.join(data, 'gatehouse.db'));
  db.exec('DROP TRIGGER audit_log_no_delete');
  const first = db.prepare<[string], { id: number }>("SELECT min(id) AS id FROM audit_log WHERE json_extract(data, '$.session') = ?").get(sid)!.id;
  db.prepare('DELETE FROM audit_log WHERE id >= ?').run(first);
  db.prepare('DELETE FROM session_text WHERE session_id = ?').run(sid);
  db.prepare('DELETE FROM recordings WHERE session_id = ?').run(sid);
  db.prepare('DELETE FROM channels WHERE session_id = ?').run(sid);
  db.prepare('DELETE FROM sessions WHERE id = ?').run(sid);
  // Roll the recordings head back one row (the previous row carries a valid signature over exactly
  // these values) and drop every head or checkpoint the database keeps about the audit log.
  const prev = db.prepare<[], { seq: number; chain_hash: string; signature: string }>('SELECT seq, chain_hash, signature FROM recordings WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1').get()!;
  db.prepare("INSERT INTO meta (key, value) VALUES ('recordings.head', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
    .run(JSON.stringify({ seq: prev.seq, chainHash: prev.chain_hash, signature: prev.signature }));
  db.prepare("DELETE FROM meta WHERE key IN ('audit.head', 'audit.checkpoint')").run();
  db.close();
}

describe.runIf(haveOpenSsh())('the witness: signed checkpoints outside the database', () => {
  let w: World;
  let op: Operator;
  const sids: string[] = [];
  const copies: string[] = [];
  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    op = w.operator('wendy');
    ghOk(w.data, ['grant', 'add', '--user', 'wendy', '--host', 'target1', '--login', w.login]);
  });
  afterAll(async () => {
    await w?.stop();
    for (const d of [w?.dir, ...copies]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  const session = async (text: string) => {
    const r = await w.ssh(op, [`${w.login}@target1`, `echo ${text}`]);
    expect(r).toMatchObject({ code: 0, stdout: `${text}\n` });
    const sid = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).at(-1)!.data.session as string;
    await expect.poll(() => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.closed']).some((e) => e.data.session === sid), { timeout: 10_000 }).toBe(true);
    sids.push(sid);
  };

  const copyData = (name: string) => {
    const dir = tempDir(`gatehouse-witness-${name}-`);
    copies.push(dir);
    const data = path.join(dir, 'data');
    fs.cpSync(w.data, data, { recursive: true });
    return data;
  };

  it('(d) healthy: sessions with admin CLI changes in between verify, while running and after stop', async () => {
    await session('first');
    ghOk(w.data, ['group', 'add', 'ops']);
    await session('second');
    ghOk(w.data, ['user', 'add', 'walter', '--role', 'auditor']);
    ghOk(w.data, ['group', 'member', 'add', 'ops', 'walter']);
    await session('third');
    ghOk(w.data, ['user', 'disable', 'walter', '--reason', 'test']);

    const running = gh(w.data, ['verify']);
    expect(running.stdout + running.stderr).toMatch(/signed head at event #\d+/);
    expect(running.code).toBe(0);

    await w.gatehouse.stop();
    const v = gh(w.data, ['verify']);
    expect(v.code).toBe(0);
    const last = ghJson<AuditRow[]>(w.data, ['audit']).at(-1)!;
    expect(last.type).toBe('server.stop');
    // The stop wrote a checkpoint covering everything, including the CLI's rows.
    expect(v.stdout).toContain(`signed head at event #${last.id}: valid`);
    expect(v.stdout).toMatch(/witness: .*witness\.log: \d+ signed checkpoint\(s\), all valid/);

    const witness = path.join(w.data, 'witness.log');
    expect(fs.statSync(witness).mode & 0o777).toBe(0o600);
    const lines = fs.readFileSync(witness, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { audit: { count: number }; recordings: { count: number; last: string } });
    expect(lines.at(-1)).toMatchObject({ audit: { count: last.id }, recordings: { count: 3, last: `${sids[2]}-0` } });
    // Mirrored to the log for the SIEM.
    expect(w.gatehouse.stdout()).toMatch(new RegExp(`"stream":"witness".*"count":${last.id}`));
  });

  it('(a) the newest session removed from the database, its file and the audit tail: verify fails naming it', () => {
    const data = copyData('a');
    const sid = sids[2]!;
    const signed = ghJson<AuditRow[]>(data, ['audit']).at(-1)!.id;
    removeNewestSession(data, sid);
    expect(ghJson<AuditRow[]>(data, ['audit']).some((e) => e.data.session === sid)).toBe(false);

    const v = gh(data, ['verify']);
    expect(v.code).toBe(1);
    // The chain links inside the database are whole; what is missing is named from the witness.
    expect(v.stdout).toMatch(/audit log: intact/);
    expect(v.stdout).toMatch(new RegExp(`chain: the last recording row\\(s\\) were removed: the chain ends at #2 but recordings up to #3 were signed .*missing #3, among them #3 ${sid}-0`));
    expect(v.stdout).toMatch(new RegExp(`audit head: BROKEN: audit rows up to #${signed} were signed but the log now ends earlier \\(at #\\d+\\): rows #\\d+–#${signed} were removed`));
    const json = ghJsonAnyExit(data, ['verify']);
    expect(json.ok).toBe(false);
  });

  it('(b) the witness deleted while rows exist: verify fails', () => {
    const data = copyData('b');
    fs.unlinkSync(path.join(data, 'witness.log'));
    const v = gh(data, ['verify']);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/audit head: BROKEN: the database has \d+ audit rows but the witness .*witness\.log is missing or empty/);
    expect(v.stdout).toMatch(/chain: the database has 3 closed recordings but the witness .* is missing or empty/);
    expect(v.stdout).toMatch(/^witness: .*witness\.log: missing$/m);
    expect(v.stdout).toMatch(/^witness: .*witness\.log: missing$/m);
  });

  it('(c) a witness line edited: verify fails naming the line', () => {
    const data = copyData('c');
    const file = path.join(data, 'witness.log');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const n = lines.length - 2; // the newest line (the file ends with a newline)
    lines[n] = lines[n]!.replace(/"recordings":\{"count":3/, '"recordings":{"count":2');
    fs.writeFileSync(file, lines.join('\n'));
    const v = gh(data, ['verify']);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`witness line ${n + 1} is not signed by this bastion's host key (edited or forged)`);
  });
});

function ghJsonAnyExit(data: string, args: string[]): { ok: boolean } {
  return JSON.parse(gh(data, [...args, '--json']).stdout) as { ok: boolean };
}
