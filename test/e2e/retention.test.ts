import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gh, ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

type AuditRow = { type: string; actor: string; data: Record<string, unknown> };
type Verify = { ok: boolean; recordings: { items: { sessionId: string; verdict: string; file: string }[] } };

describe.runIf(haveOpenSsh())('recording retention and legal hold', () => {
  let w: World;
  let alice: Operator;
  const sids: string[] = [];

  beforeAll(async () => {
    w = await startWorld({ config: 'recording:\n  retention: 3s\nauth:\n  mfaGrace: 10m\n' });
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
    for (let i = 1; i <= 3; i++) {
      const r = await w.ssh(alice, [`${w.login}@target1`, `echo kept-text-${i}`]);
      expect(r.stdout).toBe(`kept-text-${i}\n`);
    }
    const list = ghJson<{ id: string }[]>(w.data, ['sessions', 'list', '--user', 'alice']);
    sids.push(...list.map((s) => s.id).reverse());
    expect(sids).toHaveLength(3);
    for (let i = 0; ghJson<Verify>(w.data, ['verify']).recordings.items.filter((r) => r.verdict === 'intact').length < 3; i++) {
      if (i > 100) throw new Error('the recordings never closed');
      await new Promise((r) => setTimeout(r, 150));
    }
  }, 120_000);
  afterAll(async () => { await w?.stop(); });

  it('a hold needs a reason and an existing session', () => {
    expect(gh(w.data, ['sessions', 'hold', sids[1]!]).code).toBe(2);
    const r = gh(w.data, ['sessions', 'hold', 'no-such-session', '--reason', 'x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no session "no-such-session"/);
    ghOk(w.data, ['sessions', 'hold', sids[1]!, '--reason', 'case 2026-114']);
    expect(ghJson<{ sessionId: string; reason: string }[]>(w.data, ['sessions', 'holds']).map((h) => [h.sessionId, h.reason])).toEqual([[sids[1], 'case 2026-114']]);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'admin.session.hold']).map((e) => e.data)).toEqual([
      { session: sids[1], user: 'alice', reason: 'case 2026-114' },
    ]);
  });

  it("the server's sweep deletes expired recordings, keeps the held one, and verify stays green and names the deletion", async () => {
    const auditBefore = ghJson<AuditRow[]>(w.data, ['audit']).length;
    const files = Object.fromEntries(ghJson<Verify>(w.data, ['verify']).recordings.items.map((i) => [i.sessionId, path.join(w.data, 'recordings', i.file)]));
    await new Promise((r) => setTimeout(r, 3_500)); // past the 3 s retention
    await w.restart(); // the sweep runs a second after the server starts, then daily
    await expect.poll(() => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.deleted']).length, { timeout: 20_000 }).toBe(2);
    const deleted = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.deleted']);
    expect(deleted.map((e) => e.data.session).sort()).toEqual([sids[0], sids[2]].sort());
    expect(deleted.every((e) => e.actor === 'system' && e.data.reason === 'retention')).toBe(true);
    expect(fs.existsSync(files[sids[0]!]!)).toBe(false);
    expect(fs.existsSync(files[sids[2]!]!)).toBe(false);
    expect(fs.existsSync(files[sids[1]!]!)).toBe(true);

    // A deletion is green only under the retention the server runs with (its config): without it,
    // the same rows are missing files.
    expect(gh(w.data, ['verify']).code).toBe(1);
    const v = gh(w.data, ['verify', '--config', path.join(w.dir, 'gatehouse.yaml')]);
    expect(v.code).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    expect(v.stdout).toMatch(/recordings: 3 checked; chain of 3 intact and signed/);
    expect(v.stdout.match(new RegExp(`deleted by retention on ${today}`, 'g'))).toHaveLength(2);
    expect(v.stdout).toMatch(new RegExp(`${sids[1]}-0 +intact`));
    // The audit log is never deleted: it only grew.
    expect(ghJson<AuditRow[]>(w.data, ['audit']).length).toBeGreaterThan(auditBefore);
    expect(v.stdout).toMatch(/audit log: intact/);
    // The searchable copy of a deleted recording's text is gone with it; the held one's stays.
    expect(ghOk(w.data, ['sessions', 'search', 'kept-text-1'])).toMatch(/^0 session/m);
    expect(ghOk(w.data, ['sessions', 'search', 'kept-text-2'])).toMatch(/1 session/);
    // The session rows stay (who, when, where, bytes): only the recording file went.
    expect(ghJson<{ id: string }>(w.data, ['sessions', 'show', sids[0]!]).id).toBe(sids[0]);
  }, 90_000);

  it('released, the held recording goes at the next sweep (here run by hand)', () => {
    ghOk(w.data, ['sessions', 'release', sids[1]!]);
    expect(gh(w.data, ['sessions', 'release', sids[1]!]).stderr).toMatch(/not on hold/);
    const r = ghJson<{ deleted: number }>(w.data, ['retention', 'sweep', '--config', path.join(w.dir, 'gatehouse.yaml')]);
    expect(r.deleted).toBe(1);
    const v = ghJson<Verify>(w.data, ['verify', '--config', path.join(w.dir, 'gatehouse.yaml')]);
    expect(v.ok).toBe(true);
    expect(v.recordings.items.map((i) => i.verdict)).toEqual(['deleted', 'deleted', 'deleted']);
  });

  it('an attacker who deletes a recording and marks its row deleted without the audit tombstone is caught', async () => {
    // An operator of its own: alice's last TOTP step may still be the current one (a step is
    // accepted once), and her login grace need not outlive the policy changes above.
    const dave = w.operator('dave');
    ghOk(w.data, ['grant', 'add', '--user', 'dave', '--host', 'target1', '--login', w.login]);
    const r = await w.ssh(dave, [`${w.login}@target1`, 'echo evidence']);
    expect(r.stdout, r.stderr).toBe('evidence\n');
    const sid = ghJson<{ id: string }[]>(w.data, ['sessions', 'list', '--user', 'dave'])[0]!.id;
    await expect.poll(() => ghJson<Verify>(w.data, ['verify', sid]).recordings.items.map((i) => i.verdict), { timeout: 15_000 }).toEqual(['intact']);
    const item = ghJson<Verify>(w.data, ['verify', sid]).recordings.items[0]!;
    fs.unlinkSync(path.join(w.data, 'recordings', item.file));
    const db = new Database(path.join(w.data, 'gatehouse.db'));
    db.prepare('UPDATE recordings SET deleted_at = ? WHERE session_id = ?').run(Date.now(), sid);
    db.close();
    const v = gh(w.data, ['verify']);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(new RegExp(`${sid}-0 +MISSING`));
  });
});
