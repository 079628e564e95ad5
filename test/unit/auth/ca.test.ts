import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { Right } from '../../../src/audit/events.js';
import { caPaths, caState, ensureUserCa, retireCa, rotateCa, signCertificate, signingKey } from '../../../src/auth/ca.js';
import { authorize, type Grant } from '../../../src/auth/policy.js';
import { openDataDir } from '../../../src/datadir/datadir.js';
import { ManualClock } from '../../../src/shared/clock.js';
import { certificateFields, TargetAuth, type ChannelPurpose } from '../../../src/proxy/targetauth.js';
import type { GrantRecord, HostRecord, UserRecord } from '../../../src/store/types.js';
import { tempDir } from '../../helpers/cli.js';
import { haveOpenSsh } from '../../helpers/sshd.js';

const NOW = Date.UTC(2026, 10, 30, 12);
const alice: UserRecord = { id: 1, name: 'alice', roles: ['operator'], disabled: false, disabledReason: null, hasPassword: false, totpEnrolled: true, groups: [], createdAt: 0, requireSecurityKey: false };
const web1: HostRecord = { id: 1, name: 'web1', address: '10.0.0.5', port: 22, hostKey: 'ssh-ed25519 AAAA', enabled: true, groups: [], createdAt: 0, auth: 'cert' };

function grantFor(opts: { until?: number | null; rights?: Right[]; login?: string } = {}): Grant {
  const rec: GrantRecord = {
    id: 7, who: { kind: 'user', name: 'alice' }, where: { kind: 'host', name: 'web1' }, logins: ['deploy', 'root'],
    rights: opts.rights ?? ['shell', 'exec', 'sftp'], until: opts.until ?? null, reason: '', createdBy: 't', createdAt: 0,
  };
  const d = authorize({ user: alice, host: web1, login: opts.login ?? 'deploy', action: rec.rights[0]! }, [rec], NOW);
  if (!d.allow) throw new Error(d.message);
  return d.grant;
}

const shell: ChannelPurpose = { session: 'S1', channel: 0, kind: 'shell', pty: true };
const execNoPty: ChannelPurpose = { session: 'S1', channel: 1, kind: 'exec', pty: false };
const anyKey = () => (ssh2.utils.parseKey(ssh2.utils.generateKeyPairSync('ed25519').private) as ssh2.ParsedKey).getPublicSSH();
const deps = (over: Partial<{ ttl: number; src: string[] }> = {}) => ({ clock: new ManualClock(NOW), certificateTtlMs: over.ttl ?? 5 * 60_000, sourceAddresses: over.src ?? [] });

/** `ssh-keygen -L` of a certificate, the independent reader of what we signed. */
function keygenL(dir: string, line: string): string {
  const f = path.join(dir, `c${Math.random().toString(36).slice(2)}-cert.pub`);
  fs.writeFileSync(f, line + '\n');
  return execFileSync('ssh-keygen', ['-L', '-f', f], { encoding: 'utf8' });
}

describe('the user CA key files', () => {
  it('is created with the data directory, 0600, and is neither the host key nor the client key', () => {
    const dir = path.join(tempDir(), 'data');
    const d = openDataDir(dir);
    const p = caPaths(d.paths.dir);
    expect(fs.statSync(p.current).mode & 0o777).toBe(0o600);
    const ca = caState(dir).signing.line.split(' ')[1];
    const pub = (k: Buffer) => (ssh2.utils.parseKey(k) as ssh2.ParsedKey).getPublicSSH().toString('base64');
    expect(ca).not.toBe(pub(d.hostKey));
    expect(ca).not.toBe(pub(d.clientKey));
    // A second open (the CLI racing the server) keeps the same key.
    openDataDir(dir);
    expect(caState(dir).signing.line.split(' ')[1]).toBe(ca);
  });

  it('refuses a CA key that group or others can read', () => {
    const dir = tempDir();
    ensureUserCa(dir);
    fs.chmodSync(caPaths(dir).current, 0o640);
    expect(() => signingKey(dir)).toThrow(/accessible by group or others/);
  });

  it('rotates in two steps: rotate adds a key while the old one signs, retire switches and drops the old one', () => {
    const dir = tempDir();
    ensureUserCa(dir);
    const first = caState(dir);
    expect(first.next).toBeNull();
    expect(() => retireCa(dir)).toThrow(/no rotation/);

    const during = rotateCa(dir);
    expect(during.signing).toEqual(first.signing);
    expect(during.next!.fingerprint).not.toBe(first.signing.fingerprint);
    expect(fs.statSync(caPaths(dir).next).mode & 0o777).toBe(0o600);
    // Twice in a row would throw away the key targets were just given.
    expect(() => rotateCa(dir)).toThrow(/already under way/);
    expect(caState(dir).next!.fingerprint).toBe(during.next!.fingerprint);

    const r = retireCa(dir);
    expect(r.retired.fingerprint).toBe(first.signing.fingerprint);
    expect(r.signing.fingerprint).toBe(during.next!.fingerprint);
    expect(caState(dir)).toEqual({ signing: r.signing, next: null });
    expect(fs.existsSync(caPaths(dir).next)).toBe(false);
  });

  it('a running signer follows rotate and retire without a restart', () => {
    const dir = tempDir();
    ensureUserCa(dir);
    const auth = new TargetAuth({ caDir: dir, clientKey: Buffer.from('static'), clock: new ManualClock(NOW), certificateTtlMs: 300_000, sourceAddresses: [] });
    const before = caState(dir).signing.fingerprint;
    expect(auth.credentials(grantFor(), 'cert', shell).cert!.caFingerprint).toBe(before);
    const next = rotateCa(dir).next!.fingerprint;
    expect(auth.credentials(grantFor(), 'cert', shell).cert!.caFingerprint).toBe(before);
    retireCa(dir);
    expect(auth.credentials(grantFor(), 'cert', shell).cert!.caFingerprint).toBe(next);
  });
});

describe('certificate fields', () => {
  it('principal is the granted login only; key id names user, session and channel', () => {
    const f = certificateFields(grantFor({ login: 'root' }), { ...shell, session: 'SESS', channel: 3 }, anyKey(), deps());
    expect(f.principals).toEqual(['root']);
    expect(f.keyId).toBe('gatehouse:alice:SESS:3');
  });

  it('is valid from a minute ago for certificateTtl, or until the grant ends if sooner', () => {
    const long = certificateFields(grantFor(), shell, anyKey(), deps());
    expect(long.validAfter).toBe(NOW / 1000 - 60);
    expect(long.validBefore).toBe(NOW / 1000 + 300);
    // The attacker's hope: a grant ending in 30 s yields a certificate that outlives it.
    const short = certificateFields(grantFor({ until: NOW + 30_000 }), shell, anyKey(), deps());
    expect(short.validBefore).toBeLessThanOrEqual(NOW / 1000 + 30);
    const odd = certificateFields(grantFor({ until: NOW + 30_999 }), shell, anyKey(), deps());
    expect(odd.validBefore).toBe(NOW / 1000 + 30);
  });

  it('permit-pty for shells and pty execs only; port forwarding only with the forward right; never agent, X11 or user rc', () => {
    expect(certificateFields(grantFor(), shell, anyKey(), deps()).extensions).toEqual(['permit-pty']);
    expect(certificateFields(grantFor(), { ...execNoPty, pty: true }, anyKey(), deps()).extensions).toEqual(['permit-pty']);
    expect(certificateFields(grantFor(), execNoPty, anyKey(), deps()).extensions).toEqual([]);
    expect(certificateFields(grantFor(), { ...execNoPty, kind: 'subsystem' }, anyKey(), deps()).extensions).toEqual([]);
    const fwd = certificateFields(grantFor({ rights: ['exec', 'forward'] }), execNoPty, anyKey(), deps()).extensions;
    expect(fwd).toEqual(['permit-port-forwarding']);
  });

  it('source-address only when configured', () => {
    expect(certificateFields(grantFor(), shell, anyKey(), deps()).criticalOptions).toEqual({});
    expect(certificateFields(grantFor(), shell, anyKey(), deps({ src: ['10.0.0.1', '10.1.0.0/16'] })).criticalOptions)
      .toEqual({ 'source-address': '10.0.0.1,10.1.0.0/16' });
  });

  it('serials differ from one certificate to the next', () => {
    const serials = new Set(Array.from({ length: 50 }, () => certificateFields(grantFor(), shell, anyKey(), deps()).serial));
    expect(serials.size).toBe(50);
  });

  it('only a Grant minted by the policy gets a certificate; key mode hands out the static key', () => {
    const dir = tempDir();
    ensureUserCa(dir);
    const auth = new TargetAuth({ caDir: dir, clientKey: Buffer.from('static'), clock: new ManualClock(NOW), certificateTtlMs: 300_000, sourceAddresses: [] });
    const forged = { ...grantFor(), login: 'root' } as Grant;
    expect(() => auth.credentials(forged, 'cert', shell)).toThrow(/Grant/);
    expect(auth.credentials(grantFor(), 'key', shell)).toEqual({ privateKey: Buffer.from('static') });
    expect(auth.credentials(grantFor(), undefined, shell)).toEqual({ privateKey: Buffer.from('static') });
  });
});

describe('signed certificates, as ssh-keygen -L reads them', () => {
  it('carry exactly the fields we asked for, signed by the CA, for the ephemeral key', () => {
    if (!haveOpenSsh()) return;
    const dir = tempDir();
    ensureUserCa(dir);
    const auth = new TargetAuth({ caDir: dir, clientKey: Buffer.alloc(0), clock: new ManualClock(NOW), certificateTtlMs: 300_000, sourceAddresses: ['127.0.0.1/32'] });
    const creds = auth.credentials(grantFor({ rights: ['shell', 'forward'] }), 'cert', { session: 'SX', channel: 2, kind: 'shell', pty: true });
    const out = keygenL(dir, `ssh-ed25519-cert-v01@openssh.com ${creds.certificate!.toString('base64')}`);
    expect(out).toMatch(/Type: ssh-ed25519-cert-v01@openssh.com user certificate/);
    expect(out).toContain(`Signing CA: ED25519 ${caState(dir).signing.fingerprint}`);
    expect(out).toContain('Key ID: "gatehouse:alice:SX:2"');
    expect(out).toContain(`Serial: ${creds.cert!.serial}`);
    expect(out).toMatch(/Valid: from 2026-11-30T\d\d:59:00 to 2026-11-30T\d\d:05:00/);
    expect(out).toMatch(/Principals: \n\s+deploy\n\s+Critical Options: \n\s+source-address 127\.0\.0\.1\/32\n\s+Extensions: \n\s+permit-port-forwarding\n\s+permit-pty\n?$/);
    // The certificate is for the ephemeral private key handed to the dialer, and for nothing else.
    const eph = ssh2.utils.parseKey(creds.privateKey) as ssh2.ParsedKey;
    const ephPub = eph.getPublicSSH();
    expect(creds.certificate!.includes(ephPub.subarray(ephPub.length - 32))).toBe(true);
    expect(creds.cert!.validBefore).toBe(NOW / 1000 + 300);
  });

  it('with no extensions and no options, ssh-keygen shows none', () => {
    if (!haveOpenSsh()) return;
    const dir = tempDir();
    ensureUserCa(dir);
    const c = signCertificate(signingKey(dir), {
      publicKey: anyKey(), serial: 42n, keyId: 'k', principals: ['x'], validAfter: 100, validBefore: 200, criticalOptions: {}, extensions: [],
    });
    const out = keygenL(dir, c.line);
    expect(out).toContain('Serial: 42');
    expect(out).toMatch(/Critical Options: \(none\)/);
    expect(out).toMatch(/Extensions: \(none\)/);
  });
});
