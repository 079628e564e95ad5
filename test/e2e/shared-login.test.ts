import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghJson, ghOk } from '../helpers/cli.js';
import { poll } from '../helpers/proc.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * Login state shared by the workers of `serve --workers 2` (it is in the store, or for the pre-auth
 * throttle in the primary): auth.mfaGrace earned on one worker holds on the other, and ends on a
 * revocation made by the CLI (another process) even with no live session to revoke;
 * sessions.maxPerUser counts the sessions of both workers, and two logins racing for the last seat
 * on the two workers get one seat. The primary hands connections to the workers in turn.
 */
interface SessionJson { id: string; user: string; live: boolean; endReason: string | null; node: string | null }

describe.runIf(haveOpenSsh())('shared login state across serve --workers 2', () => {
  let w: World;

  beforeAll(async () => {
    w = await startWorld({ config: 'node:\n  workers: 2\n  name: gh\nauth:\n  mfaGrace: 1h\nsessions:\n  maxPerUser: 1\n' });
  }, 120_000);
  afterAll(async () => {
    await w?.stop();
  });

  const sessionsOf = (user: string) => ghJson<SessionJson[]>(w.data, ['sessions', 'list', '--user', user]);
  const noneLive = (user: string) => poll(`${user}'s sessions to end`, () => (sessionsOf(user).some((s) => s.live) ? undefined : true));
  const prompts = (op: Operator) => {
    const log = path.join(w.dir, `askpass-${op.name}.log`);
    return fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => /Verification code/.test(l)).length : 0;
  };
  function operator(name: string): Operator {
    const op = w.operator(name);
    ghOk(w.data, ['grant', 'add', '--user', name, '--host', 'target1', '--login', w.login]);
    return op;
  }
  /** One login running `echo`, then wait for its row to close (maxPerUser is 1). `answer`: what the TOTP prompt gets. */
  async function once(op: Operator, answer: 'totp' | string): Promise<{ code: number | null; stderr: string }> {
    // Generous: two cores shared by several test runs make a login take many seconds at times.
    const r = await w.ssh(op, [`${w.login}@target1`, 'echo hello'], { answer, timeoutMs: 90_000 });
    await noneLive(op.name);
    return r;
  }

  it('mfaGrace earned on one worker lets key-only logins through on both workers', async () => {
    const op = operator('grace1');
    const first = await once(op, 'totp');
    expect(first.code, first.stderr).toBe(0);
    expect(prompts(op)).toBe(1);
    // From now on the TOTP prompt would get a wrong code: every login must pass on the key alone.
    for (let i = 0; i < 6 && new Set(sessionsOf(op.name).map((s) => s.node)).size < 2; i++) {
      const r = await once(op, '000000');
      expect(r.code, r.stderr).toBe(0);
    }
    expect(new Set(sessionsOf(op.name).map((s) => s.node))).toEqual(new Set(['gh/w1', 'gh/w2']));
    expect(prompts(op)).toBe(1);
    const methods = ghJson<{ data: { user: string; method: string } }[]>(w.data, ['audit', '--type', 'auth.success'])
      .filter((e) => e.data.user === op.name).map((e) => e.data.method);
    expect(methods.filter((m) => m === 'publickey+totp')).toHaveLength(1);
    expect(methods.filter((m) => m === 'publickey+grace').length).toBeGreaterThanOrEqual(1);
  }, 300_000);

  it('user disable + enable through the CLI ends the grace on every worker: the code is asked again', async () => {
    const op = operator('grace2');
    expect((await once(op, 'totp')).code).toBe(0);
    expect((await once(op, '000000')).code).toBe(0);
    ghOk(w.data, ['user', 'disable', op.name, '--reason', 'test']);
    ghOk(w.data, ['user', 'enable', op.name]);
    // Two attempts: one on each worker (in turn).
    for (let i = 0; i < 2; i++) {
      const before = prompts(op);
      const r = await once(op, '000000');
      expect(r.code).not.toBe(0);
      expect(prompts(op)).toBe(before + 1);
    }
  }, 300_000);

  it('the key removed (and added back) through the CLI ends the grace, with no live session to revoke', async () => {
    const op = operator('grace3');
    expect((await once(op, 'totp')).code).toBe(0);
    expect((await once(op, '000000')).code).toBe(0);
    const fp = ghJson<{ fingerprint: string }[]>(w.data, ['user', 'key', 'list', op.name])[0]!.fingerprint;
    ghOk(w.data, ['user', 'key', 'remove', op.name, fp]);
    ghOk(w.data, ['user', 'key', 'add', op.name, `${op.key}.pub`]);
    for (let i = 0; i < 2; i++) {
      const before = prompts(op);
      const r = await once(op, '000000');
      expect(r.code).not.toBe(0);
      expect(prompts(op)).toBe(before + 1);
    }
  }, 300_000);

  it('sessions.maxPerUser 1: a session on one worker refuses the next login on either worker; the seat is free once it ends', async () => {
    const op = operator('seat1');
    expect((await once(op, 'totp')).code).toBe(0);
    const c = w.sshCommand(op, [`${w.login}@target1`, 'echo ready; read l; echo "got $l"'], { answer: '000000' });
    const child = spawn('setsid', ['-w', 'ssh', ...c.args], { env: c.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const done = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await poll('the held session', () => (out.includes('ready\n') ? true : undefined), 120_000)
        .catch((e: Error) => { throw new Error(`${e.message}; ssh said: ${err}`); });
      const held = sessionsOf(op.name).find((s) => s.live)!;
      // Two attempts, one on each worker: both refused by the count of the other worker's session too.
      for (let i = 0; i < 2; i++) {
        const r = await w.ssh(op, [`${w.login}@target1`, 'echo hello'], { answer: '000000', timeoutMs: 90_000 });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/you already have 1 live sessions \(the limit is 1\)/);
      }
      const refused = ghJson<{ data: { user: string; live: number } }[]>(w.data, ['audit', '--type', 'session.refused']).filter((e) => e.data.user === op.name);
      expect(refused.map((e) => e.data.live)).toEqual([1, 1]);
      expect(sessionsOf(op.name).filter((s) => s.live).map((s) => s.id)).toEqual([held.id]);
      child.stdin.end('bye\n');
      expect(await done).toBe(0);
    } finally {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }
    await noneLive(op.name);
    expect((await once(op, '000000')).code).toBe(0);
  }, 300_000);

  it('four logins racing for the one seat on the two workers: exactly one session opens', async () => {
    const op = operator('seat2');
    expect((await once(op, 'totp')).code).toBe(0);
    const results = await Promise.all(Array.from({ length: 4 }, () =>
      w.ssh(op, [`${w.login}@target1`, 'sleep 4; echo won'], { answer: '000000', timeoutMs: 120_000 })));
    const won = results.filter((r) => r.code === 0 && r.stdout.includes('won'));
    const lost = results.filter((r) => /you already have 1 live sessions/.test(r.stderr));
    expect(won, results.map((r) => `${r.code} ${r.stderr}`).join(' | ')).toHaveLength(1);
    expect(lost).toHaveLength(3);
    await noneLive(op.name);
    // The one that won is the only session row besides the first login; the refused ones left none.
    expect(sessionsOf(op.name)).toHaveLength(2);
  }, 300_000);
});
