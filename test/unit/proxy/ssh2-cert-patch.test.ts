import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import { caState, ensureUserCa, signCertificate, signingKey } from '../../../src/auth/ca.js';
import { tempDir } from '../../helpers/cli.js';
import { haveOpenSsh, LOGIN, startSshd, type Sshd } from '../../helpers/sshd.js';

/**
 * Regression test for the certificate patch gatehouse carries on ssh2 1.17.0
 * (patches/ssh2+1.17.0.patch; upstream PR 1486 is still open): a client given `certificate` offers
 * `ssh-ed25519-cert-v01@openssh.com` with the certificate blob and signs with the key's own
 * algorithm. An unpatched ssh2 ignores the option and offers the bare key, which every test here
 * notices.
 */
const key = ssh2.utils.generateKeyPairSync('ed25519').private;
const pub = () => (ssh2.utils.parseKey(key) as ssh2.ParsedKey).getPublicSSH();
const nowS = () => Math.floor(Date.now() / 1000);

function certFor(dir: string, publicKey: Buffer, principal: string): Buffer {
  return signCertificate(signingKey(dir), {
    publicKey, serial: 4242n, keyId: 'patch-test', principals: [principal], validAfter: nowS() - 60, validBefore: nowS() + 300,
    criticalOptions: {}, extensions: [],
  }).blob;
}

function connect(port: number, opts: Partial<ssh2.ConnectConfig> & { certificate?: Buffer }): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c)).once('error', reject);
    c.connect({ host: '127.0.0.1', port, username: LOGIN, privateKey: key, hostVerifier: () => true, readyTimeout: 20_000, ...opts } as ssh2.ConnectConfig);
  });
}

const stops: (() => Promise<void> | void)[] = [];
afterAll(async () => { for (const s of stops.splice(0)) await s(); });

describe('ssh2 1.17.0 certificate patch', () => {
  it('offers the certificate under its own algorithm name and signs so that the signature verifies with the key', async () => {
    const dir = tempDir();
    ensureUserCa(dir);
    const cert = certFor(dir, pub(), LOGIN);
    const offered: { algo: string; data: Buffer; sigAlgo: string | null; verified: boolean | null }[] = [];
    const server = new ssh2.Server({ hostKeys: [ssh2.utils.generateKeyPairSync('ed25519').private] }, (conn) => {
      conn.on('authentication', (ctx) => {
        if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
        // ssh2's server leaves the signature whole when its algorithm is not the offered one (the
        // certificate's): string algorithm, string raw ed25519 signature.
        let sigAlgo: string | null = null;
        let verified: boolean | null = null;
        if (ctx.signature && ctx.blob) {
          const s = ctx.signature;
          const n = s.readUInt32BE(0);
          sigAlgo = s.subarray(4, 4 + n).toString();
          const raw = s.subarray(8 + n, 8 + n + s.readUInt32BE(4 + n));
          verified = (ssh2.utils.parseKey(key) as ssh2.ParsedKey).verify(ctx.blob, raw) === true;
        }
        offered.push({ algo: ctx.key.algo, data: ctx.key.data, sigAlgo, verified });
        ctx.accept();
      });
      conn.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    stops.push(() => { server.close(); });
    const c = await connect((server.address() as AddressInfo).port, { certificate: cert });
    c.end();
    expect(offered.length).toBeGreaterThan(0);
    for (const o of offered) {
      expect(o.algo).toBe('ssh-ed25519-cert-v01@openssh.com');
      expect(o.data.equals(cert)).toBe(true);
    }
    // PROTOCOL.certkeys: the signature is the key's own ("ssh-ed25519"), which OpenSSH insists on.
    const signed = offered.filter((o) => o.sigAlgo !== null);
    expect(signed.length).toBe(1);
    expect(signed[0]!.sigAlgo).toBe('ssh-ed25519');
    expect(signed[0]!.verified).toBe(true);
  });

  it('refuses a certificate that certifies another key, before anything is sent', async () => {
    const dir = tempDir();
    ensureUserCa(dir);
    const other = (ssh2.utils.parseKey(ssh2.utils.generateKeyPairSync('ed25519').private) as ssh2.ParsedKey).getPublicSSH();
    const c = new ssh2.Client();
    expect(() => c.connect({ host: '127.0.0.1', port: 1, username: 'x', privateKey: key, certificate: certFor(dir, other, 'x') } as ssh2.ConnectConfig))
      .toThrow(/does not certify privateKey/);
  });

  it('a real sshd trusting the CA, with an empty authorized_keys, accepts the certificate and logs its key id', async () => {
    if (!haveOpenSsh()) return;
    const dir = tempDir();
    ensureUserCa(dir);
    const caFile = path.join(dir, 'trusted_ca.pub');
    fs.writeFileSync(caFile, caState(dir).signing.line + '\n');
    const sshd: Sshd = await startSshd([], { config: [`TrustedUserCAKeys ${caFile}`] });
    stops.push(() => sshd.stop());
    // Without the certificate the same key is refused: it is in no authorized_keys.
    await expect(connect(sshd.port, {})).rejects.toThrow(/authentication methods failed/);
    const c = await connect(sshd.port, { certificate: certFor(dir, pub(), LOGIN) });
    const out = await new Promise<string>((resolve, reject) => c.exec('echo cert-ok', (err, ch) => {
      if (err) return reject(err);
      let s = '';
      ch.on('data', (d: Buffer) => { s += d.toString(); });
      ch.on('close', () => resolve(s));
    }));
    c.end();
    expect(out.trim()).toBe('cert-ok');
    await sshd.proc.waitFor(/Accepted publickey for \S+ from 127\.0\.0\.1 .*ED25519-CERT .*ID patch-test \(serial 4242\)/, 10_000);
  });
});
