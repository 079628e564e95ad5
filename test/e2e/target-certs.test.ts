import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signCertificate, signingKey } from '../../src/auth/ca.js';
import { ghJson, ghOk, gh } from '../helpers/cli.js';
import { haveOpenSsh, startSshd, type Sshd } from '../helpers/sshd.js';
import { runSsh, startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

type AuditRow = { type: string; data: Record<string, unknown> };

/**
 * Short-lived certificates to targets (`host add|set --auth cert`): a real sshd that trusts only
 * the user CA (`TrustedUserCAKeys` from `gatehouse ca show`, an empty authorized_keys), reached in
 * command mode and with `ssh -J`; what the target refuses (another login, an expired certificate, a
 * retired CA); the switch back to the static key; and what the operator can never get hold of.
 */
describe.runIf(haveOpenSsh())('certificates to targets', () => {
  let w: World;
  let alice: Operator;
  let certd: Sshd;
  let trusted: string;
  let cfg: string;

  const channels = () => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).map((e) => e.data);
  const lastChannel = () => channels().at(-1)!;
  const cmd = (args: string[], extra: string[] = []) => w.ssh(alice, [`${w.login}@web`, ...args], { extra, timeoutMs: 60_000 });
  const jump = (args: string[]): Promise<SshResult> => runSsh(['-F', cfg, 'web', ...args], w.sshCommand(alice, []).env, undefined, 60_000);
  const trust = (lines: string) => fs.writeFileSync(trusted, lines.trim() + '\n');
  /** The sshd log lines for one key id (VERBOSE: "Accepted publickey … ID <key id> (serial N) CA …"). */
  const accepted = (keyId: string) => certd.proc.stderr().split('\n').filter((l) => l.includes('Accepted publickey') && l.includes(`ID ${keyId} `));

  beforeAll(async () => {
    // source-address as the bastion's egress (loopback here): the real sshd checks it on every login.
    w = await startWorld({ config: "auth:\n  mfaGrace: 1h\ntargets:\n  certificateTtl: 2m\n  sourceAddresses: ['127.0.0.1/32']\n" });
    alice = w.operator('alice');
    trusted = path.join(w.dir, 'trusted_user_ca_keys');
    trust(ghOk(w.data, ['ca', 'show']));
    certd = await startSshd([], { config: [`TrustedUserCAKeys ${trusted}`] });
    ghOk(w.data, ['host', 'add', 'web', '--address', '127.0.0.1', '--port', String(certd.port), '--host-key', certd.hostKey, '--auth', 'cert']);
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'web', '--login', w.login, '--for', '1h']);
    cfg = w.jumpConfig(alice, ['web']);
  });
  afterAll(async () => {
    await certd?.stop();
    await w?.stop();
  });

  it('ca show prints the TrustedUserCAKeys line; host show says cert', () => {
    expect(ghOk(w.data, ['ca', 'show']).trim()).toMatch(/^ssh-ed25519 AAAA\S+ gatehouse user CA$/);
    expect(ghJson<{ auth: string }>(w.data, ['host', 'show', 'web']).auth).toBe('cert');
    expect(ghJson<{ auth: string }>(w.data, ['host', 'show', 'target1']).auth).toBe('key');
    expect(gh(w.data, ['host', 'set', 'web']).code).toBe(2);
    expect(gh(w.data, ['host', 'set', 'web', '--auth', 'password']).code).toBe(2);
    expect(gh(w.data, ['host', 'set', 'web', '--auth', 'cert']).stderr).toMatch(/already uses --auth cert/);
    const retire = gh(w.data, ['ca', 'retire']);
    expect(retire.code).toBe(1);
    expect(retire.stderr).toMatch(/no rotation is under way/);
  });

  it('command mode: the command runs, and the target logs the key id naming the operator and session', async () => {
    const r = await cmd(['echo', 'via-cert;', 'id', '-un']);
    expect(r.stderr).not.toMatch(/denied|cannot/);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`via-cert\n${w.login}\n`);
    const ch = lastChannel();
    const keyId = `gatehouse:alice:${ch.session as string}:${ch.channel as number}`;
    expect(ch.certKeyId).toBe(keyId);
    expect(ch.certSerial).toMatch(/^\d+$/);
    const lines = accepted(keyId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`Accepted publickey for ${w.login} from 127.0.0.1`);
    expect(lines[0]).toContain(`ED25519-CERT`);
    expect(lines[0]).toContain(`(serial ${ch.certSerial as string})`);
  });

  it('ssh -J: the inner session gets a certificate of its own', async () => {
    const r = await jump(['echo', 'via-jump']);
    expect(r.stderr).not.toMatch(/denied|refused/);
    expect(r.stdout).toBe('via-jump\n');
    const ch = lastChannel();
    expect(ch.certKeyId).toMatch(new RegExp(`^gatehouse:alice:${ch.session as string}:\\d+$`));
    expect(accepted(ch.certKeyId as string)).toHaveLength(1);
  });

  it('permit-pty only where a pty was asked for: a pty exec gets a terminal, a plain exec runs without', async () => {
    const withPty = await cmd(['tty'], ['-tt']);
    expect(withPty.stdout).toMatch(/^\/dev\/pts\/\d+\r?\n$/);
    const without = await cmd(['tty']);
    expect(without.stdout).toBe('not a tty\n');
    // Two channels, two certificates, two serials.
    const [a, b] = channels().slice(-2);
    expect(a!.certSerial).not.toBe(b!.certSerial);
  });

  describe("the attacker's view", () => {
    it('a grant ending in 30 s gives a certificate ending no later', async () => {
      ghOk(w.data, ['host', 'add', 'web30', '--address', '127.0.0.1', '--port', String(certd.port), '--host-key', certd.hostKey, '--auth', 'cert']);
      ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'web30', '--login', w.login, '--for', '30s']);
      const until = Date.parse(ghJson<{ host?: string; where?: unknown; until: string | null }[]>(w.data, ['grant', 'list', '--host', 'web30'])[0]!.until!);
      const r = await w.ssh(alice, [`${w.login}@web30`, 'echo', 'short'], { timeoutMs: 60_000 });
      expect(r.stdout).toBe('short\n');
      const ch = lastChannel();
      expect(ch.host).toBe('web30');
      const end = Date.parse(ch.certValidBefore as string);
      expect(end).toBeLessThanOrEqual(until);
      expect(end).toBeGreaterThan(until - 1_000);
      ghOk(w.data, ['host', 'remove', 'web30']);
    });

    /** Sign as gatehouse would (its CA, our module), with the fields we choose, and present it ourselves. */
    function present(login: string, fields: { principal: string; validAfter: number; validBefore: number; keyId: string }): Promise<string> {
      const eph = ssh2.utils.generateKeyPairSync('ed25519').private;
      const pub = (ssh2.utils.parseKey(eph) as ssh2.ParsedKey).getPublicSSH();
      const cert = signCertificate(signingKey(w.data), {
        publicKey: pub, serial: 7n, keyId: fields.keyId, principals: [fields.principal], validAfter: fields.validAfter, validBefore: fields.validBefore,
        criticalOptions: {}, extensions: [],
      });
      return new Promise((resolve) => {
        const c = new ssh2.Client();
        c.once('ready', () => { c.end(); resolve('accepted'); });
        c.once('error', (err) => resolve(`refused: ${err.message}`));
        c.connect({ host: '127.0.0.1', port: certd.port, username: login, privateKey: eph, certificate: cert.blob, hostVerifier: () => true, readyTimeout: 20_000 } as ssh2.ConnectConfig);
      });
    }
    const nowS = () => Math.floor(Date.now() / 1000);

    it('a certificate for one login is refused for another (principal)', async () => {
      // The control: the same kind of certificate works for its own login.
      expect(await present(w.login, { principal: w.login, validAfter: nowS() - 60, validBefore: nowS() + 60, keyId: 'attacker-own' })).toBe('accepted');
      expect(await present('nobody', { principal: w.login, validAfter: nowS() - 60, validBefore: nowS() + 60, keyId: 'attacker-other' })).toMatch(/^refused/);
      await certd.proc.waitFor(/name is not a listed principal/, 10_000);
    });

    it('a certificate is refused after its validity (signed with an injected clock, ten minutes ago, for two minutes)', async () => {
      const then = nowS() - 600;
      expect(await present(w.login, { principal: w.login, validAfter: then - 60, validBefore: then + 120, keyId: 'attacker-expired' })).toMatch(/^refused/);
      await certd.proc.waitFor(/[Cc]ertificate invalid: expired/, 10_000);
      expect(accepted('attacker-expired')).toHaveLength(0);
    });

    it('the operator never sees the certificate or its key: not on the wire to them, not in the audit, log or data directory', async () => {
      const r = await cmd(['echo', 'x']);
      expect(r.code).toBe(0);
      const certPrefix = Buffer.from('\0\0\0\x20ssh-ed25519-cert-v01@openssh.com').toString('base64').slice(0, 40);
      const audit = gh(w.data, ['audit', '--json']).stdout;
      for (const text of [r.stdout, r.stderr, audit, w.gatehouse.stdout(), w.gatehouse.stderr()]) {
        expect(text).not.toContain(certPrefix);
        expect(text).not.toContain('cert-v01');
        expect(text).not.toContain('PRIVATE KEY');
      }
      // Only the keys gatehouse keeps are private keys in the data directory: nothing ephemeral.
      const privateFiles = fs.readdirSync(w.data, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && fs.readFileSync(path.join(e.parentPath, e.name)).includes('PRIVATE KEY'))
        .map((e) => path.relative(w.data, path.join(e.parentPath, e.name)));
      expect(privateFiles.filter((f) => !f.startsWith('target_keys')).sort()).toEqual(['client_ed25519_key', 'ssh_host_ed25519_key', 'user_ca_ed25519_key']);
    });
  });

  it('rotation: rotate (both lines, old key signs), the target trusts both, retire (new key signs at once), the old key is refused', async () => {
    const oldLine = ghOk(w.data, ['ca', 'show']).trim();
    const signedByOld = signingKey(w.data);
    ghOk(w.data, ['ca', 'rotate']);
    const both = ghOk(w.data, ['ca', 'show']).trim().split('\n');
    expect(both).toHaveLength(2);
    expect(both).toContain(oldLine);
    // The targets are not updated yet: the old key still signs, so nothing breaks.
    expect((await cmd(['echo', 'during'])).stdout).toBe('during\n');
    trust(both.join('\n'));
    expect((await cmd(['echo', 'both-trusted'])).stdout).toBe('both-trusted\n');

    ghOk(w.data, ['ca', 'retire']);
    const newLine = ghOk(w.data, ['ca', 'show']).trim();
    expect(newLine.split(' ')[1]).toBe(both.find((l) => l !== oldLine)!.split(' ')[1]);
    // The running server signs with the new key at once (no restart), the target still trusts both.
    expect((await cmd(['echo', 'after-retire'])).stdout).toBe('after-retire\n');
    const ch = lastChannel();
    const line = accepted(ch.certKeyId as string)[0]!;
    const newFp = ghJson<{ signing: { fingerprint: string } }>(w.data, ['ca', 'show']).signing.fingerprint;
    expect(line).toContain(`CA ED25519 ${newFp}`);

    // The target drops the old line: a certificate the retired key signed is refused.
    trust(newLine);
    const eph = ssh2.utils.generateKeyPairSync('ed25519').private;
    const cert = signCertificate(signedByOld, {
      publicKey: (ssh2.utils.parseKey(eph) as ssh2.ParsedKey).getPublicSSH(), serial: 9n, keyId: 'old-ca', principals: [w.login],
      validAfter: Math.floor(Date.now() / 1000) - 60, validBefore: Math.floor(Date.now() / 1000) + 60, criticalOptions: {}, extensions: [],
    });
    const outcome = await new Promise<string>((resolve) => {
      const c = new ssh2.Client();
      c.once('ready', () => { c.end(); resolve('accepted'); });
      c.once('error', () => resolve('refused'));
      c.connect({ host: '127.0.0.1', port: certd.port, username: w.login, privateKey: eph, certificate: cert.blob, hostVerifier: () => true, readyTimeout: 20_000 } as ssh2.ConnectConfig);
    });
    expect(outcome).toBe('refused');
    expect(accepted('old-ca')).toHaveLength(0);
    // And gatehouse carries on with the new key alone.
    expect((await cmd(['echo', 'new-only'])).stdout).toBe('new-only\n');
    const events = ghJson<AuditRow[]>(w.data, ['audit', '--json']).map((e) => e.type);
    expect(events).toContain('admin.ca.rotate');
    expect(events).toContain('admin.ca.retire');
  });

  it('a host switched back to --auth key uses the static client key (and only that)', async () => {
    ghOk(w.data, ['host', 'set', 'web', '--auth', 'key']);
    // The target's authorized_keys is empty: the static key alone gets nowhere, so no certificate was sent.
    const refused = await cmd(['echo', 'nope']);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe('');
    fs.writeFileSync(certd.authorizedKeys, ghOk(w.data, ['key', 'show']).trim() + '\n');
    const r = await cmd(['echo', 'static-key']);
    expect(r.stdout).toBe('static-key\n');
    const ch = lastChannel();
    expect(ch.certSerial).toBeUndefined();
    expect(ch.certKeyId).toBeUndefined();
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'admin.host.auth']).at(-1)!.data).toMatchObject({ host: 'web', auth: 'key', previous: 'cert' });
    ghOk(w.data, ['host', 'set', 'web', '--auth', 'cert']);
  });
});
