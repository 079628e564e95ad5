import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditMark } from '../helpers/auditdb.js';
import { ghJson, ghOk } from '../helpers/cli.js';
import { buildSkProvider, enrolSkKey, haveSkToolchain } from '../helpers/sk-provider/index.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { runSsh, startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

/**
 * FIDO2 security keys end to end: the stock ssh-keygen enrols ed25519-sk / ecdsa-sk keys on a
 * software authenticator (test/helpers/sk-provider, loaded as SecurityKeyProvider), and the stock
 * ssh logs in through gatehouse with them. The provider misbehaves on request (no touch, a fixed
 * counter, another application) to play the attacker with the real client.
 */
type AuditRow = { id: number; type: string; data: Record<string, unknown> };
interface SkOperator extends Operator { counter: string }

// Each test runs several stock ssh logins and CLI calls on a shared two-core machine: generous
// time limits, and no timing assertions.
describe.runIf(haveOpenSsh() && haveSkToolchain())('security keys (sk-) with the stock OpenSSH client', { timeout: 300_000 }, () => {
  let w: World;
  let provider: string;
  let target: string;

  const audit = (type: string, user: string, after = 0) =>
    ghJson<AuditRow[]>(w.data, ['audit', '--type', type]).filter((e) => e.data.user === user && e.id > after);
  // A mark to look for newer rows after: bookkeeping read from the file, not a CLI run (the
  // assertions themselves still read the audit log through the CLI).
  const lastId = () => auditMark(w.data);
  const askpassLog = (op: Operator) => { const f = path.join(w.dir, `askpass-${op.name}.log`); return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : ''; };
  const storedCounter = (op: Operator) => ghJson<{ type: string; skCounter: number | null }[]>(w.data, ['user', 'key', 'list', op.name]).find((k) => k.type.startsWith('sk-'))!.skCounter;

  function skOperator(name: string, o: { type?: 'ed25519-sk' | 'ecdsa-sk'; verifyRequired?: boolean } = {}): SkOperator {
    const key = enrolSkKey(provider, path.join(w.dir, `id_${name}_sk`), { type: o.type, comment: name });
    ghOk(w.data, ['user', 'add', name]);
    ghOk(w.data, ['user', 'key', 'add', name, `${key}.pub`, ...(o.verifyRequired ? ['--verify-required'] : [])]);
    const secret = ghJson<{ secret: string }>(w.data, ['user', 'totp', 'enroll', name]).secret;
    ghOk(w.data, ['grant', 'add', '--user', name, '--host', 'target1', '--login', w.login]);
    return { name, key, secret, counter: path.join(w.dir, `counter-${name}`) };
  }

  /** The stock ssh with the software authenticator; `env` makes it misbehave. */
  const skSsh = (op: SkOperator, args: string[], env: NodeJS.ProcessEnv = {}): Promise<SshResult> =>
    w.ssh(op, args, { extra: ['-o', `SecurityKeyProvider=${provider}`], env: { GH_SK_COUNTER_FILE: op.counter, ...env }, timeoutMs: 60_000 });

  beforeAll(async () => {
    provider = buildSkProvider();
    w = await startWorld({ config: 'auth:\n  securityKeys: second-factor\n' });
    target = `${w.login}@target1`;
  }, 180_000);
  afterAll(async () => { await w?.stop(); });

  it('an ed25519-sk key logs in with a touch and no TOTP prompt (second-factor); the counter is kept', async () => {
    const sam = skOperator('sam');
    const r = await skSsh(sam, [target, 'echo hello']);
    expect(r.stderr).not.toMatch(/Permission denied/);
    expect(r).toMatchObject({ code: 0, stdout: 'hello\n' });
    expect(askpassLog(sam)).not.toContain('Verification code');
    const ok = audit('auth.success', 'sam');
    expect(ok).toHaveLength(1);
    expect(ok[0]!.data).toMatchObject({ method: 'publickey-sk', source: '127.0.0.1' });
    expect(storedCounter(sam)).toBe(Number(fs.readFileSync(sam.counter, 'utf8')));
    // Again: a new touch, a higher counter.
    expect((await skSsh(sam, [target, 'true'])).code).toBe(0);
    expect(storedCounter(sam)).toBe(2);
  });

  it('an ecdsa-sk key logs in too', async () => {
    const erin = skOperator('erin', { type: 'ecdsa-sk' });
    const r = await skSsh(erin, [target, 'echo ecdsa']);
    expect(r).toMatchObject({ code: 0, stdout: 'ecdsa\n' });
    expect(audit('auth.success', 'erin').at(-1)!.data).toMatchObject({ method: 'publickey-sk' });
  });

  it('a signature without the presence flag (no touch) is refused and audited', async () => {
    const nora = skOperator('nora');
    const r = await skSsh(nora, [target, 'echo no'], { GH_SK_NO_UP: '1' });
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    expect(audit('auth.failure', 'nora').map((e) => e.data.reason)).toContain('sk_no_presence');
    expect(audit('auth.success', 'nora')).toHaveLength(0);
    expect(storedCounter(nora)).toBeNull(); // a refused signature does not move the counter
  });

  it('a counter that does not grow (replay, cloned key) is refused as sk_counter', async () => {
    const carl = skOperator('carl');
    expect((await skSsh(carl, [target, 'true'])).code).toBe(0);
    expect((await skSsh(carl, [target, 'true'])).code).toBe(0);
    const seen = storedCounter(carl)!;
    expect(seen).toBe(2);
    for (const fixed of [seen, seen - 1]) {
      const after = lastId();
      const r = await skSsh(carl, [target, 'echo cloned'], { GH_SK_FIXED_COUNTER: String(fixed) });
      expect(r.code).toBe(255);
      expect(r.stdout).toBe('');
      expect(audit('auth.failure', 'carl', after).map((e) => e.data.reason)).toEqual(['sk_counter']);
    }
    expect(audit('auth.success', 'carl')).toHaveLength(2);
  });

  it('two connections racing with the same counter: exactly one logs in', async () => {
    const rae = skOperator('rae');
    const after = lastId();
    const rs = await Promise.all([1, 2, 3].map(() => skSsh(rae, [target, 'echo raced'], { GH_SK_FIXED_COUNTER: '500' })));
    expect(rs.filter((r) => r.code === 0)).toHaveLength(1);
    expect(rs.filter((r) => r.code === 255)).toHaveLength(2);
    expect(audit('auth.success', 'rae', after)).toHaveLength(1);
    expect(audit('auth.failure', 'rae', after).map((e) => e.data.reason)).toEqual(['sk_counter', 'sk_counter']);
  });

  it('a signature for another application is refused and audited', async () => {
    const abe = skOperator('abe');
    const r = await skSsh(abe, [target, 'echo app'], { GH_SK_APPLICATION: 'ssh:elsewhere' });
    expect(r.code).toBe(255);
    expect(audit('auth.failure', 'abe').map((e) => e.data.reason)).toContain('bad_signature');
    expect(audit('auth.success', 'abe')).toHaveLength(0);
    // The key itself still works for its own application.
    expect((await skSsh(abe, [target, 'true'])).code).toBe(0);
  });

  it('a verify-required key needs the user-verification flag (a PIN)', async () => {
    const vera = skOperator('vera', { verifyRequired: true });
    expect(ghJson<{ verifyRequired: boolean }[]>(w.data, ['user', 'key', 'list', 'vera'])[0]!.verifyRequired).toBe(true);
    const r = await skSsh(vera, [target, 'echo pin'], { GH_SK_NO_UV: '1' });
    expect(r.code).toBe(255);
    expect(audit('auth.failure', 'vera').map((e) => e.data.reason)).toContain('sk_no_verification');
    expect((await skSsh(vera, [target, 'echo pin'], { GH_SK_UV: '1' }))).toMatchObject({ code: 0, stdout: 'pin\n' });
  });

  it('a user who must use a security key: the plain key is refused with a message saying so; the sk key logs in', async () => {
    const rita = skOperator('rita');
    const plain: Operator = { name: 'rita', key: path.join(w.dir, 'id_rita_plain'), secret: rita.secret };
    ghOk(w.data, ['user', 'key', 'add', 'rita', '-'], { input: fs.readFileSync(enrolPlain(plain.key), 'utf8') });
    ghOk(w.data, ['user', 'set', 'rita', '--require-security-key']);
    expect(ghJson<{ requireSecurityKey: boolean }>(w.data, ['user', 'show', 'rita']).requireSecurityKey).toBe(true);
    const r = await w.ssh(plain, [target, 'echo plain']);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('gatehouse: rita must log in with a security key');
    expect(askpassLog(plain)).not.toContain('Verification code');
    expect(audit('auth.failure', 'rita').map((e) => e.data.reason)).toContain('security_key_required');
    expect(audit('auth.success', 'rita')).toHaveLength(0);
    expect(await skSsh(rita, [target, 'echo sk'])).toMatchObject({ code: 0, stdout: 'sk\n' });
    expect(audit('admin.user.security_key', 'rita')[0]!.data).toMatchObject({ required: true });
  });

  it('ssh -J with an sk key: both hops touch the key, the session is recorded', async () => {
    const jo = skOperator('jo');
    const knownHosts = path.join(w.dir, 'known_hosts-jo');
    fs.writeFileSync(knownHosts, fs.readFileSync(w.knownHosts, 'utf8') + ghOk(w.data, ['known-hosts']));
    const cfg = path.join(w.dir, 'config-jo');
    fs.writeFileSync(cfg, [
      'Host bastion', '  HostName 127.0.0.1', `  Port ${w.port}`, '  User jo',
      'Host target1', '  ProxyJump bastion', `  User ${w.login}`,
      'Host *', `  IdentityFile ${jo.key}`, '  IdentitiesOnly yes', `  SecurityKeyProvider ${provider}`,
      `  UserKnownHostsFile ${knownHosts}`, '  StrictHostKeyChecking yes', '  PreferredAuthentications publickey', '',
    ].join('\n'));
    const env = { ...w.sshCommand(jo, []).env, GH_SK_COUNTER_FILE: jo.counter };
    const after = lastId();
    const r = await runSsh(['-F', cfg, 'target1', 'echo jumped; exit 3'], env, undefined, 60_000);
    expect(r).toMatchObject({ code: 3, stdout: 'jumped\n' });
    expect(audit('auth.success', 'jo', after).map((e) => e.data.method)).toEqual(['publickey-sk']);
    expect(storedCounter(jo)).toBe(2); // the outer login and the inner one, each a new touch
    const ch = audit('session.channel', 'jo', after).at(-1)!;
    expect(ch.data).toMatchObject({ host: 'target1', login: w.login, kind: 'exec', command: 'echo jumped; exit 3' });
    const sid = ch.data.session as string;
    await expect.poll(() => ghJson<{ recordings: unknown[] }>(w.data, ['sessions', 'show', sid]).recordings.length, { timeout: 20_000 }).toBe(1);
    await expect.poll(() => ghJson<{ ok: boolean }>(w.data, ['verify', sid]).ok, { timeout: 20_000 }).toBe(true);

    // The inner connection holds the key to the same rules: the outer hop logs in, the inner one
    // repeats its counter (a cloned key) and is refused.
    const before = lastId();
    const replay = await runSsh(['-F', cfg, 'target1', 'echo again'], { ...env, GH_SK_REPEAT_ONCE: '1' }, undefined, 60_000);
    expect(replay.code).toBe(255);
    expect(replay.stdout).toBe('');
    expect(audit('auth.success', 'jo', before)).toHaveLength(1);
    expect(audit('auth.failure', 'jo', before).map((e) => e.data.reason)).toEqual(['sk_counter']);
    expect(audit('session.channel', 'jo', before)).toHaveLength(0);
  });

  it('under first-factor the sk key still asks for TOTP (publickey-sk+totp)', async () => {
    fs.writeFileSync(path.join(w.dir, 'gatehouse.yaml'), 'auth:\n  securityKeys: first-factor\n');
    await w.restart();
    const fay = skOperator('fay');
    const r = await skSsh(fay, [target, 'echo both']);
    expect(r).toMatchObject({ code: 0, stdout: 'both\n' });
    expect(askpassLog(fay)).toContain('Verification code');
    expect(audit('auth.success', 'fay').at(-1)!.data).toMatchObject({ method: 'publickey-sk+totp' });
  });
});

function enrolPlain(file: string): string {
  // A plain ed25519 key, as an operator has next to the security key.
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  return `${file}.pub`;
}
