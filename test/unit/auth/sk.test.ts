import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  SK_ECDSA, SK_ED25519, parsePublicKey, parsePublicKeys, parseSkSignature, verifyKeySignature, verifySignature,
} from '../../../src/auth/sshkey.js';
import { proveKey } from '../../../src/auth/keyproof.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import type { Store } from '../../../src/store/types.js';
import { admin, tempStore } from '../../helpers/store.js';

/**
 * FIDO2 security keys, computed here in software from PROTOCOL.u2f alone (independently of the
 * code under test): key blobs, signatures in both wire forms, and the hostile variants.
 */
const str = (b: Buffer | string) => { const d = Buffer.from(b); const l = Buffer.alloc(4); l.writeUInt32BE(d.length); return Buffer.concat([l, d]); };
const mpint = (b: Buffer) => { let i = 0; while (i < b.length - 1 && b[i] === 0) i++; const v = b.subarray(i); return str(v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v); };
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

interface SoftKey {
  type: string;
  line: string;
  priv: KeyObject;
  application: string;
}

function softKey(type: typeof SK_ED25519 | typeof SK_ECDSA, application = 'ssh:', extra = Buffer.alloc(0)): SoftKey {
  const kp = type === SK_ED25519 ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let keyPart: Buffer;
  if (type === SK_ED25519) {
    keyPart = str(kp.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
  } else {
    const jwk = kp.publicKey.export({ format: 'jwk' });
    keyPart = Buffer.concat([str('nistp256'), str(Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]))]);
  }
  const blob = Buffer.concat([str(type), keyPart, str(application), extra]);
  return { type, line: `${type} ${blob.toString('base64')} test`, priv: kp.privateKey, application };
}

/** The signature blob as OpenSSH sends it: string type, string sig, byte flags, uint32 counter. */
function skSign(k: SoftKey, message: Buffer, flags: number, counter: number, application = k.application): Buffer {
  const fc = Buffer.alloc(5);
  fc[0] = flags;
  fc.writeUInt32BE(counter, 1);
  const data = Buffer.concat([sha256(application), fc, sha256(message)]);
  let inner: Buffer;
  if (k.type === SK_ED25519) inner = sign(null, data, k.priv);
  else {
    const rs = sign('sha256', data, { key: k.priv, dsaEncoding: 'ieee-p1363' });
    inner = Buffer.concat([mpint(rs.subarray(0, 32)), mpint(rs.subarray(32))]);
  }
  return Buffer.concat([str(k.type), str(inner), fc]);
}

/** What ssh2's server hands over: the type and the inner length cut off. */
const asSsh2 = (k: SoftKey, full: Buffer) => full.subarray(4 + k.type.length + 4);

const MSG = Buffer.from('session id and userauth request');
const ctxFor = (k: SoftKey, signature: Buffer, blob = MSG) => ({ key: { algo: k.type, data: Buffer.alloc(0), comment: '' }, signature, blob, hashAlgo: undefined });

describe.each([SK_ED25519, SK_ECDSA] as const)('security key %s', (type) => {
  it('is parsed with its application, "ssh:" by default, and verify-required as an option', () => {
    const k = softKey(type);
    const info = parsePublicKey(k.line, 'key', { securityKeys: true });
    expect(info).toMatchObject({ type, bits: 256, application: 'ssh:', verifyRequired: false, comment: 'test' });
    expect(parsePublicKey(softKey(type, 'ssh:gatehouse').line, 'key', { securityKeys: true }).application).toBe('ssh:gatehouse');
    expect(parsePublicKeys(`verify-required ${k.line}\n`)[0]).toMatchObject({ type, verifyRequired: true });
  });

  it('is refused where a host key is expected, with a non-ssh application, trailing data, or no-touch-required', () => {
    const k = softKey(type);
    expect(() => parsePublicKey(k.line)).toThrow(/not accepted here/);
    expect(() => parsePublicKeys(softKey(type, 'https://example.com').line)).toThrow(/application must be "ssh:"/);
    expect(() => parsePublicKeys(softKey(type, 'ssh:', Buffer.from([0, 0, 0, 0])).line)).toThrow(/trailing data/);
    expect(() => parsePublicKeys(`no-touch-required ${k.line}`)).toThrow(/always requires the touch/);
    expect(() => parsePublicKeys(`from="10.0.0.1" ${k.line}`)).toThrow(/options/);
  });

  it('verifies a good signature in both wire forms and returns its counter', () => {
    const k = softKey(type);
    const full = skSign(k, MSG, 0x01, 7);
    for (const sig of [full, asSsh2(k, full)]) {
      expect(verifyKeySignature({ publicKey: k.line }, ctxFor(k, sig))).toEqual({ ok: true, sk: { flags: 1, counter: 7 } });
    }
    // The plain verifier never says yes to an sk- key: its flags and counter must be looked at.
    expect(verifySignature(k.line, ctxFor(k, full) as never)).toBe(false);
  });

  it('refuses a signature without the presence flag, even a valid one', () => {
    const k = softKey(type);
    expect(verifyKeySignature({ publicKey: k.line }, ctxFor(k, skSign(k, MSG, 0x04, 8)))).toEqual({ ok: false, reason: 'sk_no_presence' });
  });

  it('refuses a signature without user verification when the key is verify-required', () => {
    const k = softKey(type);
    expect(verifyKeySignature({ publicKey: k.line, verifyRequired: true }, ctxFor(k, skSign(k, MSG, 0x01, 9)))).toEqual({ ok: false, reason: 'sk_no_verification' });
    expect(verifyKeySignature({ publicKey: k.line, verifyRequired: true }, ctxFor(k, skSign(k, MSG, 0x05, 10)))).toMatchObject({ ok: true });
  });

  it('refuses a signature for another application, another message, altered flags or counter, another key', () => {
    const k = softKey(type);
    const bad = (sig: Buffer, blob = MSG) => verifyKeySignature({ publicKey: k.line }, ctxFor(k, sig, blob));
    expect(bad(skSign(k, MSG, 0x01, 11, 'ssh:other'))).toEqual({ ok: false, reason: 'bad_signature' });
    expect(bad(skSign(k, MSG, 0x01, 12), Buffer.from('another session'))).toEqual({ ok: false, reason: 'bad_signature' });
    const flipped = skSign(k, MSG, 0x04, 13);
    flipped[flipped.length - 5] = 0x05; // claim the touch after the fact
    expect(bad(flipped)).toEqual({ ok: false, reason: 'bad_signature' });
    const bumped = skSign(k, MSG, 0x01, 14);
    bumped.writeUInt32BE(1000, bumped.length - 4);
    expect(bad(bumped)).toEqual({ ok: false, reason: 'bad_signature' });
    expect(bad(skSign(softKey(type), MSG, 0x01, 15))).toEqual({ ok: false, reason: 'bad_signature' });
    expect(bad(Buffer.concat([skSign(k, MSG, 0x01, 16), Buffer.from([0])]))).toEqual({ ok: false, reason: 'bad_signature' });
    expect(bad(Buffer.alloc(0))).toEqual({ ok: false, reason: 'bad_signature' });
    // A signature that names another algorithm than the key.
    expect(verifyKeySignature({ publicKey: k.line }, { ...ctxFor(k, skSign(k, MSG, 1, 17)), key: { algo: 'ssh-ed25519', data: Buffer.alloc(0) } })).toEqual({ ok: false, reason: 'bad_signature' });
  });
});

describe('sk signature parsing', () => {
  it('survives truncated and absurd input', () => {
    for (let n = 0; n < 120; n++) {
      expect(() => parseSkSignature(SK_ECDSA, Buffer.alloc(n, 0xff))).not.toThrow();
      expect(() => parseSkSignature(SK_ED25519, Buffer.alloc(n, 0x00))).not.toThrow();
    }
    expect(parseSkSignature('ssh-ed25519', Buffer.alloc(69))).toBeNull();
  });
});

describe('the counter', () => {
  const stores: Store[] = [];
  afterEach(() => { while (stores.length) stores.pop()!.close(); });

  async function world() {
    const t = tempStore();
    stores.push(t.store);
    await t.store.users.add('alice', ['operator'], admin);
    const k = softKey(SK_ED25519);
    const [added] = await t.store.keys.add('alice', [parsePublicKey(k.line, 'key', { securityKeys: true })], admin);
    return { ...t, k, key: added! };
  }

  it('must grow: the same or a smaller counter is refused as sk_counter', async () => {
    const { store, k, key } = await world();
    expect(key.skCounter).toBeNull();
    expect(await proveKey(store, key, ctxFor(k, skSign(k, MSG, 1, 5)))).toEqual({ ok: true, securityKey: true });
    expect(await proveKey(store, key, ctxFor(k, skSign(k, MSG, 1, 5)))).toEqual({ ok: false, reason: 'sk_counter' });
    expect(await proveKey(store, key, ctxFor(k, skSign(k, MSG, 1, 4)))).toEqual({ ok: false, reason: 'sk_counter' });
    expect(await proveKey(store, key, ctxFor(k, skSign(k, MSG, 1, 6)))).toEqual({ ok: true, securityKey: true });
    expect((await store.keys.byFingerprint(key.fingerprint))!.skCounter).toBe(6);
    // A refused signature does not move the counter.
    expect(await proveKey(store, key, ctxFor(k, skSign(k, MSG, 0, 100)))).toEqual({ ok: false, reason: 'sk_no_presence' });
    expect((await store.keys.byFingerprint(key.fingerprint))!.skCounter).toBe(6);
  });

  it('two connections (two database handles) racing with the same counter: exactly one wins', async () => {
    const { store, clock, file, key } = await world();
    const other = createSqliteStore(file, clock);
    stores.push(other);
    for (let counter = 1; counter <= 50; counter++) {
      const wins = await Promise.all([store.keys.claimCounter(key.fingerprint, counter), other.keys.claimCounter(key.fingerprint, counter)]);
      expect(wins.filter(Boolean)).toHaveLength(1);
    }
    expect(await other.keys.claimCounter(key.fingerprint, 0xffffffff)).toBe(true);
    expect(await store.keys.claimCounter(key.fingerprint, 0x100000000)).toBe(false);
  });

  it('accepting a counter is not a policy change (live sessions are not re-checked at every login)', async () => {
    const { store, key } = await world();
    const before = await store.policy.version();
    expect(await store.keys.claimCounter(key.fingerprint, 1)).toBe(true);
    expect(await store.policy.version()).toBe(before);
  });

  it('a user can be required to use a security key; the change is audited', async () => {
    const { store } = await world();
    await store.users.setRequireSecurityKey('alice', true, admin);
    expect((await store.users.get('alice'))!.requireSecurityKey).toBe(true);
    const last = (await store.audit.list({ limit: 1 }))[0]!;
    expect(last).toMatchObject({ type: 'admin.user.security_key', data: { user: 'alice', required: true } });
  });
});

describe('the gate after --require-security-key', () => {
  it('a plain-key identity is no longer valid (live sessions end); an sk-key identity is', async () => {
    const { checkIdentity } = await import('../../../src/auth/admit.js');
    const { store } = tempStore();
    try {
      const u = await store.users.add('pat', ['operator'], admin);
      const sk = softKey(SK_ED25519);
      const { fixtureKey } = await import('../../helpers/cli.js');
      const [plain, skKey] = await store.keys.add('pat', [parsePublicKey(fixtureKey('ed25519')), parsePublicKey(sk.line, 'key', { securityKeys: true })], admin);
      const id = (fingerprint: string) => ({ user: 'pat', userId: u.id, fingerprint, totpCreatedAt: null });
      expect((await checkIdentity(store, id(plain!.fingerprint))).ok).toBe(true);
      await store.users.setRequireSecurityKey('pat', true, admin);
      expect(await checkIdentity(store, id(plain!.fingerprint))).toMatchObject({ ok: false, reason: 'security_key_required' });
      expect((await checkIdentity(store, id(skKey!.fingerprint))).ok).toBe(true);
    } finally {
      store.close();
    }
  });
});
