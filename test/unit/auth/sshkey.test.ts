import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalizeFingerprint, parsePublicKey, parsePublicKeys } from '../../../src/auth/sshkey.js';
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
