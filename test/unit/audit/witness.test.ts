import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import ssh2 from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import { draft } from '../../../src/audit/events.js';
import { startAuditMirror } from '../../../src/audit/mirror.js';
import { CHECKPOINT_KEY, createWitness, readWitness, witnessChanges, witnessPath } from '../../../src/audit/witness.js';
import { verifyCheckpoints } from '../../../src/audit/witnesscheck.js';
import { signer } from '../../../src/recorder/recorder.js';
import { hostKeyVerifier, verifyRecordings } from '../../../src/recorder/verify.js';
import { createLogger } from '../../../src/shared/logger.js';
import type { Store } from '../../../src/store/types.js';
import { admin, tempStore } from '../../helpers/store.js';

const hostKey = Buffer.from(ssh2.utils.generateKeyPairSync('ed25519').private);
const otherKey = Buffer.from(ssh2.utils.generateKeyPairSync('ed25519').private);
const sign = signer(hostKey);
const verifier = hostKeyVerifier(hostKey);

const cleanups: (() => void)[] = [];
afterEach(() => { for (const c of cleanups.splice(0)) c(); });

function world() {
  const t = tempStore();
  const dir = path.dirname(t.file);
  const file = path.join(dir, 'witness.log');
  cleanups.push(() => { try { t.store.close(); } catch { /* closed by the test */ } fs.rmSync(dir, { recursive: true, force: true }); });
  const witness = createWitness({ file, store: t.store, sign, clock: t.clock });
  return { ...t, dir, witnessFile: file, witness };
}

let sessionNo = 0;
/** One session with one closed recording, chained and signed as the recorder does. */
async function recordedSession(store: Store): Promise<string> {
  const id = `sess-${++sessionNo}`;
  await store.sessions.open({ id, user: 'alice', keyFingerprint: 'SHA256:k', sourceAddr: '127.0.0.1', mode: 'command' });
  await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command: 'true', pty: false, host: 'web1', login: 'deploy' });
  await store.audit.append(draft('session.start', 'system', { session: id, user: 'alice', source: '127.0.0.1', key: 'SHA256:k' }));
  await store.recordings.open({ sessionId: id, channel: 0, path: `${id}-0.cast`, kind: 'terminal' });
  const rec = await store.recordings.close({ sessionId: id, channel: 0, state: 'closed', truncated: false, size: 10, sha256: 'ab'.repeat(32) }, sign);
  await store.audit.append(draft('recording.closed', 'system', { session: id, channel: 0, user: 'alice', file: `${id}-0.cast`, state: 'closed', size: 10, sha256: 'ab'.repeat(32), seq: rec.seq ?? 0 }));
  return id;
}

/** The attack from the issue, done to the SQLite file: the newest session's rows go, and the audit tail with them. */
function rollBack(file: string, sessionId: string): void {
  const db = new Database(file);
  db.exec('DROP TRIGGER audit_log_no_delete');
  const first = db.prepare<[string], { id: number }>("SELECT min(id) AS id FROM audit_log WHERE json_extract(data, '$.session') = ?").get(sessionId)!.id;
  db.prepare('DELETE FROM audit_log WHERE id >= ?').run(first);
  db.prepare('DELETE FROM recordings WHERE session_id = ?').run(sessionId);
  db.prepare('DELETE FROM channels WHERE session_id = ?').run(sessionId);
  db.prepare('DELETE FROM sessions WHERE id = ?').run(sessionId);
  // What the database itself says about its ends goes too.
  db.prepare("DELETE FROM meta WHERE key IN (?, 'audit.head', 'recordings.head')").run(CHECKPOINT_KEY);
  db.close();
}

describe('signed checkpoints and the witness', () => {
  it('healthy: checkpoints after each change verify, and a database ahead of the witness is fine', async () => {
    const { store, clock, witness, witnessFile } = world();
    await store.users.add('alice', ['operator'], admin);
    await witness.checkpoint({ force: true });
    const first = await recordedSession(store);
    clock.advance(5000);
    await witness.checkpoint();
    await recordedSession(store);
    await store.groups.add('ops', admin); // newer than the last checkpoint

    const r = await verifyCheckpoints(store, verifier, witnessFile);
    expect(r).toMatchObject({ ok: true, problems: [], audit: { problems: [] }, recordings: { problems: [] } });
    expect(r.checkpoints).toBe(3); // two lines and the database's copy
    expect(r.witness).toEqual({ exists: true, valid: 2 });
    expect(r.audit.signed).toBeLessThan(r.audit.rows);
    const lines = readWitness(witnessFile).lines;
    expect(lines).toHaveLength(2);
    expect(lines[1]!.checkpoint).toMatchObject({ v: 1, audit: { count: 3 }, recordings: { count: 1, last: `${first}-0` } });
    expect(fs.statSync(witnessFile).mode & 0o777).toBe(0o600);
  });

  it('nothing moved: no new line; on the timer at most one a second unless a recording closed', async () => {
    const { store, clock, witness, witnessFile } = world();
    await store.users.add('alice', ['operator'], admin);
    expect(await witness.checkpoint()).not.toBeNull();
    expect(await witness.checkpoint({ force: true })).toBeNull();
    await store.users.add('bob', ['operator'], admin);
    expect(await witness.checkpoint()).toBeNull(); // same second
    clock.advance(1000);
    expect(await witness.checkpoint()).not.toBeNull();
    // A closed recording does not wait for the second to pass.
    await recordedSession(store);
    expect(await witness.checkpoint()).toMatchObject({ recordings: { count: 1 } });
    expect(readWitness(witnessFile).lines).toHaveLength(3);
  });

  it('(a) the last recording row, its session and the audit tail removed: verify names what is missing', async () => {
    const { store, file, witness, witnessFile } = world();
    await store.users.add('alice', ['operator'], admin);
    await recordedSession(store);
    const last = await recordedSession(store);
    await witness.checkpoint({ force: true });
    const signed = await store.audit.head();
    store.close();
    rollBack(file, last);

    const { createSqliteStore } = await import('../../../src/store/sqlite/index.js');
    const reopened = createSqliteStore(file, { now: () => 0 });
    cleanups.unshift(() => reopened.close());
    // The chains themselves are intact: only a record kept outside the database can tell.
    expect(await reopened.audit.verify()).toMatchObject({ ok: true });
    const r = await verifyCheckpoints(reopened, verifier, witnessFile);
    expect(r.ok).toBe(false);
    expect(r.recordings.problems.join('\n')).toMatch(new RegExp(`last recording row\\(s\\) were removed: the chain ends at #1 but recordings up to #2 were signed .*missing #2, among them #2 ${last}-0`));
    expect(r.audit.problems.join('\n')).toMatch(new RegExp(`audit rows up to #${signed.count} were signed but the log now ends earlier \\(at #3\\): rows #4–#${signed.count} were removed \\(checkpoint of .*, witness line 1\\)`));

    // The same through verifyRecordings (what `verify` prints under "chain:").
    const rec = await verifyRecordings(reopened, path.dirname(file), verifier, undefined, { witness: r });
    expect(rec.chain.ok).toBe(false);

    // New rows written after the rollback take the removed positions: still caught, as replaced.
    await reopened.users.add('mallory', ['admin'], admin);
    await reopened.users.add('mallory2', ['admin'], admin);
    await reopened.users.add('mallory3', ['admin'], admin);
    await reopened.users.add('mallory4', ['admin'], admin);
    const again = await verifyCheckpoints(reopened, verifier, witnessFile);
    expect(again.audit.problems.join('\n')).toMatch(new RegExp(`audit row #${signed.count} differs from the one signed`));
  });

  it('(b) rows but no checkpoint (witness and database copy deleted): verify fails', async () => {
    const { store, file, witness, witnessFile } = world();
    await store.users.add('alice', ['operator'], admin);
    await recordedSession(store);
    await witness.checkpoint({ force: true });
    fs.unlinkSync(witnessFile);
    const db = new Database(file);
    db.prepare('DELETE FROM meta WHERE key = ?').run(CHECKPOINT_KEY);
    db.close();
    const r = await verifyCheckpoints(store, verifier, witnessFile);
    expect(r.ok).toBe(false);
    expect(r.audit.problems[0]).toMatch(new RegExp(`^the database has 3 audit rows but the witness ${witnessFile} is missing or empty`));
    expect(r.recordings.problems[0]).toMatch(/^the database has 1 closed recording but the witness .* is missing or empty/);
  });

  it('(b) the web view (database copy only) fails when that copy is gone too', async () => {
    const { store, witness } = world();
    await recordedSession(store);
    await witness.checkpoint({ force: true });
    expect((await verifyCheckpoints(store, verifier)).ok).toBe(true);
    await store.meta.set(CHECKPOINT_KEY, 'x');
    const r = await verifyCheckpoints(store, verifier);
    expect(r.ok).toBe(false);
    expect(r.recordings.problems[0]).toMatch(/the database has 1 closed recording but no signed checkpoint exists/);
  });

  it('an empty database with no witness is fine', async () => {
    const { store, witnessFile } = world();
    expect((await verifyCheckpoints(store, verifier, witnessFile)).ok).toBe(true);
  });

  it('(c) a witness line edited or signed by another key: verify fails naming the line', async () => {
    const { store, clock, witness, witnessFile } = world();
    await store.users.add('alice', ['operator'], admin);
    await witness.checkpoint({ force: true });
    await store.users.add('bob', ['operator'], admin);
    clock.advance(2000);
    await witness.checkpoint();
    const lines = fs.readFileSync(witnessFile, 'utf8').split('\n');
    // Lower the count someone wants the witness to claim: the signature no longer matches.
    lines[1] = lines[1]!.replace('"count":2', '"count":1');
    fs.writeFileSync(witnessFile, lines.join('\n'));
    let r = await verifyCheckpoints(store, verifier, witnessFile);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual(["witness line 2 is not signed by this bastion's host key (edited or forged)"]);

    // A whole line forged with another key, and a line that is not JSON.
    const forged = createWitness({ file: witnessFile, store, sign: signer(otherKey), clock });
    await forged.checkpoint({ force: true });
    fs.appendFileSync(witnessFile, 'garbage\n');
    r = await verifyCheckpoints(store, verifier, witnessFile);
    expect(r.problems).toContain("witness line 3 is not signed by this bastion's host key (edited or forged)");
    expect(r.problems).toContain('witness line 4 is not a checkpoint (edited or corrupted)');
  });

  it('a checkpoint signature cannot be borrowed from a recording row (rolled-back head)', async () => {
    const { store, witness, witnessFile } = world();
    await recordedSession(store);
    await witness.checkpoint({ force: true });
    const row = (await store.recordings.bySeq(1))!;
    const line = JSON.parse(fs.readFileSync(witnessFile, 'utf8').trim()) as { sig: string };
    fs.writeFileSync(witnessFile, JSON.stringify({ ...line, sig: row.signature }) + '\n');
    expect((await verifyCheckpoints(store, verifier, witnessFile)).problems).toHaveLength(1);
  });

  it('the CLI path: a command that appended rows leaves a checkpoint, a read-only one writes nothing', async () => {
    const { store, clock, witnessFile } = world();
    const deps = { file: witnessFile, store, sign, clock };
    let close = await witnessChanges(deps);
    await store.users.list();
    await close();
    expect(fs.existsSync(witnessFile)).toBe(false);
    close = await witnessChanges(deps);
    await store.users.add('alice', ['operator'], admin);
    await close();
    expect(readWitness(witnessFile).lines.map((l) => l.checkpoint?.audit.count)).toEqual([1]);
    expect((await verifyCheckpoints(store, verifier, witnessFile)).ok).toBe(true);
  });

  it('the mirror writes a checkpoint when it flushes and logs it for the SIEM', async () => {
    const { store, witnessFile, clock } = world();
    const out: string[] = [];
    const log = createLogger({ destination: new Writable({ write(chunk, _e, cb) { out.push(String(chunk)); cb(); } }) });
    const mirror = await startAuditMirror(store, log, createWitness({ file: witnessFile, store, sign, clock, log }), 60_000);
    await store.users.add('alice', ['operator'], admin);
    await mirror.flush();
    await store.users.add('bob', ['operator'], admin);
    await mirror.stop();
    const logged = out.map((l) => JSON.parse(l) as { stream?: string; event?: string; checkpoint?: { audit: { count: number } } });
    expect(logged.filter((l) => l.stream === 'audit').map((l) => l.event)).toEqual(['admin.user.add', 'admin.user.add']);
    expect(logged.filter((l) => l.stream === 'witness').map((l) => l.checkpoint!.audit.count)).toEqual([1, 2]);
    expect(readWitness(witnessFile).lines.map((l) => l.checkpoint!.audit.count)).toEqual([1, 2]);
  });

  it('audit.witness: absolute, or relative to the data directory; default DATA/witness.log', () => {
    const dataDir = { paths: { witness: '/d/witness.log' } };
    expect(witnessPath({ dataDir: '/d', audit: {} }, dataDir)).toBe('/d/witness.log');
    expect(witnessPath({ dataDir: '/d', audit: { witness: '/elsewhere/w.log' } }, dataDir)).toBe('/elsewhere/w.log');
    expect(witnessPath({ dataDir: '/d', audit: { witness: '../w.log' } }, dataDir)).toBe('/w.log');
  });
});
