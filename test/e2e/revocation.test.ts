import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditAfter, auditMark, type AuditRow } from '../helpers/auditdb.js';
import { fixtureKey, ghJson, ghOk } from '../helpers/cli.js';
import { poll, startProc } from '../helpers/proc.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';


/**
 * A live session: a command that runs for a while, started and waited for until the operator has SEEN
 * its first line (a revocation before that would race the command's own output: under load the
 * client could end with nothing printed). The session id comes from its session.channel audit row.
 */
async function liveSession(w: World, op: Operator, host = 'target1'): Promise<{ sid: string; done: Promise<SshResult> }> {
  // The session id is bookkeeping, not an outcome: read from the audit log's file (no CLI start-up).
  const mark = auditMark(w.data);
  const c = w.sshCommand(op, [`${w.login}@${host}`, 'echo started; sleep 45; echo finished']);
  const p = startProc('setsid', ['-w', 'ssh', ...c.args], { env: c.env });
  // Bounded like runSsh: a session nobody ends is killed (its command sleeps 45 s after its first line).
  const timer = setTimeout(() => { if (p.child.pid) process.kill(p.child.pid, 'SIGKILL'); }, 150_000);
  const done = new Promise<SshResult>((resolve) => p.child.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code, stdout: p.stdout(), stderr: p.stderr(), stdoutBytes: Buffer.from(p.stdout()) });
  }));
  // Generous: on a loaded machine (load 10-30 on two cores) a login and the first line took over 30 s.
  await p.waitFor(/^started$/m, 90_000);
  const sid = await poll(`${op.name}'s session.channel audit row`, () => {
    const rows = auditAfter(w.data, mark, 'session.channel', op.name);
    return rows.length > 0 ? rows.at(-1)!.data.session as string : undefined;
  }, 15_000);
  return { sid, done };
}

const timings: string[] = [];

// Per test: a login, a live session, a change and its checks, all through CLI runs (slow under load).
describe.runIf(haveOpenSsh())('revocation ends live sessions within a second', { timeout: 180_000 }, () => {
  let w: World;
  let n = 0;
  const fresh = (opts: { group?: string; noGrant?: boolean } = {}): Operator => {
    const op = w.operator(`op${++n}`);
    if (opts.group) ghOk(w.data, ['group', 'member', 'add', opts.group, op.name]);
    else if (!opts.noGrant) ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target1', '--login', w.login]);
    return op;
  };

  beforeAll(async () => {
    w = await startWorld();
    ghOk(w.data, ['host', 'add', 'target3', '--address', '127.0.0.1', '--port', String(w.sshd.port), '--host-key', w.sshd.hostKey]);
    ghOk(w.data, ['group', 'add', 'ops']);
    ghOk(w.data, ['grant', 'add', '--group', 'ops', '--host', 'target1', '--login', w.login]);
  }, 180_000); // a server, an sshd and CLI runs: slow on a loaded machine, bounded all the same
  afterAll(async () => {
    console.log(`revocation, from the CLI's exit to the ssh client's exit:\n${timings.join('\n')}`);
    await w?.stop();
  });

  /** Make a change with the CLI while a session is live; the session must end, audited, recording intact. */
  async function revoke(what: string, op: Operator, change: (op: Operator) => void, reason: string, message: RegExp, host = 'target1') {
    const { sid, done } = await liveSession(w, op, host);
    change(op);
    const t0 = Date.now();
    const r = await done;
    const ms = Date.now() - t0;
    timings.push(`  ${what.padEnd(22)} ${ms} ms`);
    expect(r.code).not.toBe(0);
    // The outcome, not a time bound (the figure is logged above): the session ended before its
    // command did (its first line, never "finished"), with the revocation's message.
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toMatch(message);
    const ev = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.terminated']).filter((e) => e.data.session === sid);
    expect(ev.map((e) => e.data.reason)).toEqual([reason]);
    await expect.poll(() => ghJson<{ endedAt: string | null }>(w.data, ['sessions', 'show', sid]).endedAt, { timeout: 10_000 }).not.toBeNull();
    const v = ghJson<{ ok: boolean; recordings: { items: { verdict: string }[] } }>(w.data, ['verify', sid]);
    expect(v.recordings.items.map((i) => i.verdict)).toEqual(['intact']);
    return sid;
  }

  const revoked = /gatehouse: access revoked by an administrator/;

  it('user disable ends the user\'s session and leaves another user\'s session on the same host alone', async () => {
    const bob = fresh();
    const other = await liveSession(w, bob);
    const alice = fresh();
    await revoke('user disable', alice, (op) => ghOk(w.data, ['user', 'disable', op.name]), 'user_disabled', revoked);
    ghOk(w.data, ['sessions', 'kill', other.sid]); // bob's session was untouched until now
    const r = await other.done;
    expect(r.stderr).toMatch(/session ended by an administrator/);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.terminated']).filter((e) => e.data.session === other.sid).map((e) => e.data.reason)).toEqual(['killed_by_admin']);
  });

  it('user remove', async () => { await revoke('user remove', fresh(), (op) => ghOk(w.data, ['user', 'remove', op.name]), 'user_removed', revoked); });
  it('role removed', async () => { await revoke('role remove', fresh(), (op) => ghOk(w.data, ['user', 'role', 'remove', op.name, 'operator']), 'not_operator', revoked); });
  it('key removed', async () => {
    await revoke('key remove', fresh(), (op) => {
      const fp = ghJson<{ fingerprint: string }[]>(w.data, ['user', 'key', 'list', op.name])[0]!.fingerprint;
      ghOk(w.data, ['user', 'key', 'remove', op.name, fp]);
    }, 'key_removed', revoked);
  });
  it('TOTP reset', async () => { await revoke('totp reset', fresh(), (op) => ghOk(w.data, ['user', 'totp', 'reset', op.name]), 'totp_reset', revoked); });
  it('removed from the group that held the grant', async () => {
    await revoke('group member remove', fresh({ group: 'ops' }), (op) => ghOk(w.data, ['group', 'member', 'remove', 'ops', op.name]), 'no_grant', revoked);
  });
  it('grant removed', async () => {
    const op = fresh({ noGrant: true });
    const g = ghJson<{ id: number }>(w.data, ['grant', 'add', '--user', op.name, '--host', 'target1', '--login', w.login]);
    await revoke('grant remove', op, () => ghOk(w.data, ['grant', 'remove', String(g.id)]), 'no_grant', revoked);
  });
  it('host disabled', async () => {
    const op = fresh({ noGrant: true });
    ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target3', '--login', w.login]);
    await revoke('host disable', op, () => ghOk(w.data, ['host', 'disable', 'target3']), 'host_disabled', revoked, 'target3');
    ghOk(w.data, ['host', 'enable', 'target3']);
  });
  it('host key re-pinned', async () => {
    const op = fresh({ noGrant: true });
    ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target3', '--login', w.login]);
    await revoke('host key re-pin', op, () => ghOk(w.data, ['host', 'trust', 'target3', '--yes', '--host-key', fixtureKey('ed25519').split(' ').slice(0, 2).join(' ')]), 'host_key_changed', revoked, 'target3');
  });
  it('host removed', async () => {
    const op = fresh({ noGrant: true });
    ghOk(w.data, ['host', 'add', 'target4', '--address', '127.0.0.1', '--port', String(w.sshd.port), '--host-key', w.sshd.hostKey]);
    ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target4', '--login', w.login]);
    await revoke('host remove', op, () => ghOk(w.data, ['host', 'remove', 'target4']), 'unknown_host', revoked, 'target4');
  });
  it('sessions kill', async () => {
    await revoke('sessions kill', fresh(), (op) => {
      const sid = ghJson<{ id: string }[]>(w.data, ['sessions', 'list', '--live', '--user', op.name])[0]!.id;
      ghOk(w.data, ['sessions', 'kill', sid, '--reason', 'incident 42']);
    }, 'killed_by_admin', /gatehouse: session ended by an administrator/);
  });

  it('a grant --for 3s ends the session at about 3 s', async () => {
    const op = fresh({ noGrant: true });
    ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target1', '--login', w.login, '--for', '3s']);
    const t0 = Date.now();
    // Not liveSession(): on a loaded machine the login alone can outlast 3 s, so the session may end
    // before the target printed anything; what matters is who ended it and why.
    const r = await w.ssh(op, [`${w.login}@target1`, 'echo started; sleep 45; echo finished'], { timeoutMs: 60_000 });
    const ms = Date.now() - t0;
    timings.push(`  ${'grant --for 3s'.padEnd(22)} ended after ${ms} ms`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/gatehouse: your access to target1 has expired/);
    // Not before the grant ran out (load only makes this later); ended by the expiry, not by the
    // command finishing (it sleeps 45 s), whatever the machine's load.
    expect(ms).toBeGreaterThan(2500);
    expect(r.stdout).not.toMatch(/finished/);
    const sid = ghJson<{ id: string }[]>(w.data, ['sessions', 'list', '--user', op.name])[0]!.id;
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.terminated']).filter((e) => e.data.session === sid).map((e) => e.data.reason)).toEqual(['grant_expired']);
  });

  it('a change made by another process without any policy effect ends nothing', async () => {
    const op = fresh();
    const { sid, done } = await liveSession(w, op);
    ghOk(w.data, ['user', 'add', `unrelated${n}`]);
    ghOk(w.data, ['host', 'add', `unrelated${n}`, '--address', '192.0.2.9']);
    await new Promise((r) => setTimeout(r, 1200));
    expect(ghJson<{ endedAt: string | null }>(w.data, ['sessions', 'show', sid]).endedAt).toBeNull();
    ghOk(w.data, ['sessions', 'kill', sid]);
    await done;
  });

  it('the policy version moves with every policy table, in the CLI process too', () => {
    const db = new Database(path.join(w.data, 'gatehouse.db'), { readonly: true });
    const v = () => Number((db.prepare("SELECT value FROM meta WHERE key = 'policy_version'").get() as { value: string }).value);
    const before = v();
    ghOk(w.data, ['group', 'add', `g${n}`]);
    expect(v()).toBeGreaterThan(before);
    db.close();
  });
});

describe.runIf(haveOpenSsh())('session limits', { timeout: 120_000 }, () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ config: 'sessions:\n  idleTimeout: 3s\n  maxDuration: 6s\n  maxPerUser: 1\nauth:\n  mfaGrace: 1h\n' });
  }, 180_000);
  afterAll(async () => { await w?.stop(); });
  const grantTo = (op: Operator) => ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target1', '--login', w.login]);

  it('an idle session is warned, then ended', async () => {
    const op = w.operator('idle1');
    grantTo(op);
    const r = await w.ssh(op, [`${w.login}@target1`, 'sleep 20'], { timeoutMs: 30_000 });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/gatehouse: idle: this session ends in .* without activity/);
    expect(r.stderr).toMatch(/gatehouse: session ended: idle for 3s/);
    // Ended by gatehouse (255 and idle_timeout below), not by `sleep 20` ending (exit 0): the outcome,
    // not a time bound.
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.terminated']).at(-1)!.data.reason).toBe('idle_timeout');
  });

  it('activity keeps a session alive until the maximum length', async () => {
    const op = w.operator('busy1');
    grantTo(op);
    const t0 = Date.now();
    const r = await w.ssh(op, [`${w.login}@target1`, 'for i in $(seq 1 40); do echo tick; sleep 0.5; done'], { timeoutMs: 30_000 });
    const ms = Date.now() - t0;
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/gatehouse: session ended: maximum session length \(6s\) reached/);
    // Not before the maximum length (load only makes this later); ended by it, not by the loop
    // finishing (40 ticks): the outcome, not an upper time bound.
    expect(ms).toBeGreaterThan(5500);
    expect(r.stdout.match(/tick/g)?.length ?? 0).toBeLessThan(40);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.terminated']).at(-1)!.data.reason).toBe('max_duration');
  });

  it('a user at the session limit is refused the next session with a message', async () => {
    const op = w.operator('limit1');
    grantTo(op);
    const first = w.ssh(op, [`${w.login}@target1`, 'for i in 1 2 3 4; do echo x; sleep 0.5; done'], { timeoutMs: 30_000 });
    await expect.poll(() => ghJson<unknown[]>(w.data, ['sessions', 'list', '--live', '--user', 'limit1']).length, { timeout: 10_000 }).toBe(1);
    const second = await w.ssh(op, [`${w.login}@target1`, 'echo second']);
    expect(second.code).toBe(1);
    expect(second.stdout).toBe('');
    expect(second.stderr).toMatch(/gatehouse: you already have 1 live sessions \(the limit is 1\)/);
    expect((await first).stdout).toBe('x\nx\nx\nx\n');
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.refused']).at(-1)!.data).toMatchObject({ user: 'limit1', reason: 'max_per_user' });
  });
});
