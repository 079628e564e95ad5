import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { isWeakSignature, normalizeFingerprint, parsePublicKey, parsePublicKeys, verifySignature } from '../../../src/auth/sshkey.js';
import { FIXTURES, fixtureKey } from '../../helpers/cli.js';

// Fingerprints as printed by `ssh-keygen -lf` when the fixtures were made.
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'keys', 'fingerprints.json'), 'utf8')) as Record<string, { fingerprint: string; bits: number }>;

describe('public keys', () => {
  it.each(['ed25519', 'ecdsa256', 'rsa2048'])('accepts %s with the fingerprint ssh-keygen prints', (name) => {
    const k = parsePublicKey(fixtureKey(name));
    expect(k.fingerprint).toBe(expected[name]!.fingerprint);
    expect(k.bits).toBe(expected[name]!.bits);
    expect(k.comment).toBe(`fixture-${name}`);
  });

  it('refuses RSA under 2048 bits and DSA as weak', () => {
    expect(() => parsePublicKey(fixtureKey('rsa1024'))).toThrow(/RSA key of 1024 bits is too weak/);
    expect(() => parsePublicKey(fixtureKey('dsa'))).toThrow(/DSA keys are refused/);
  });

  it('refuses malformed input with a reason', () => {
    const [type, b64] = fixtureKey('ed25519').split(' ');
    expect(() => parsePublicKey('hello')).toThrow(/not an SSH public key/);
    expect(() => parsePublicKey(`${type} !!!notbase64`)).toThrow(/not base64/);
    expect(() => parsePublicKey(`ssh-rsa ${b64}`)).toThrow(/does not match its type/);
    expect(() => parsePublicKey(`${type} ${b64!.slice(0, 40)}`)).toThrow(/does not match its type|malformed/);
    expect(() => parsePublicKey(`from="10.0.0.1" ${type} ${b64}`)).toThrow(/options/);
    expect(() => parsePublicKey(`ssh-ed25519-cert-v01@openssh.com ${b64}`)).toThrow(/certificates/);
    expect(() => parsePublicKey(`foo-key ${b64}`)).toThrow(/unknown key type/);
  });

  it('reads several lines, skipping comments, all or nothing', () => {
    const text = `# team keys\n${fixtureKey('ed25519')}\n\n${fixtureKey('ecdsa256')}`;
    expect(parsePublicKeys(text).map((k) => k.type)).toEqual(['ssh-ed25519', 'ecdsa-sha2-nistp256']);
    expect(() => parsePublicKeys(`${fixtureKey('ed25519')}${fixtureKey('rsa1024')}`)).toThrow(/line 2: RSA key of 1024 bits/);
    expect(() => parsePublicKeys('# nothing\n')).toThrow(/no public key found/);
  });

  it('normalizes fingerprints and refuses malformed ones', () => {
    const fp = expected.ed25519!.fingerprint;
    expect(normalizeFingerprint(fp)).toBe(fp);
    expect(normalizeFingerprint(fp.slice(7))).toBe(fp);
    expect(() => normalizeFingerprint('MD5:aa:bb')).toThrow(/not a SHA256 fingerprint/);
  });
});

describe('publickey login signatures (one check for the outer and the -J inner connection)', () => {
  const pair = ssh2.utils.generateKeyPairSync('ed25519');
  const priv = ssh2.utils.parseKey(pair.private) as { sign(d: Buffer): Buffer };
  const stored = pair.public.split(' ').slice(0, 2).join(' ');
  const blob = Buffer.from('session id and userauth request');
  const key = { algo: 'ssh-ed25519', data: Buffer.alloc(0) };

  it('accepts a signature made by the stored key, nothing else', () => {
    const signature = priv.sign(blob);
    expect(verifySignature(stored, { key, blob, signature, hashAlgo: undefined })).toBe(true);
    expect(verifySignature(stored, { key, blob: Buffer.from('another request'), signature, hashAlgo: undefined })).toBe(false);
    const other = ssh2.utils.generateKeyPairSync('ed25519').public.split(' ').slice(0, 2).join(' ');
    expect(verifySignature(other, { key, blob, signature, hashAlgo: undefined })).toBe(false);
    expect(verifySignature(stored, { key, blob, signature: undefined, hashAlgo: undefined })).toBe(false);
  });

  it.each([
    ['ssh-dss query', { algo: 'ssh-dss' }, undefined, undefined, true],
    ['ssh-rsa signed with SHA-1', { algo: 'ssh-rsa' }, Buffer.from('s'), 'sha1', true],
    ['ssh-rsa signed with no hash named (SHA-1)', { algo: 'ssh-rsa' }, Buffer.from('s'), undefined, true],
    ['rsa-sha2-512', { algo: 'ssh-rsa' }, Buffer.from('s'), 'sha512', false],
    ['ed25519', { algo: 'ssh-ed25519' }, Buffer.from('s'), undefined, false],
    ['ssh-rsa query (no signature yet)', { algo: 'ssh-rsa' }, undefined, undefined, false],
  ] as const)('weak: %s → %s', (_n, k, signature, hashAlgo, weak) => {
    expect(isWeakSignature({ key: { ...k, data: Buffer.alloc(0) }, signature, hashAlgo })).toBe(weak);
  });
});
