import { describe, expect, it } from 'vitest';
import { checkCode, newSecret, normalizeSecret, otpauthUri } from '../../../src/auth/totp.js';
import { totpAt } from '../../helpers/totp.js';
import { admin, tempStore } from '../../helpers/store.js';

// RFC 6238 appendix B test secret (ASCII "12345678901234567890"), base32.
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const T = 1_111_111_109; // RFC 6238 test time; 8-digit code 07081804 → 6 digits 081804

describe('TOTP', () => {
  it('our independent helper matches the RFC 6238 test vector', () => {
    expect(totpAt(RFC_SECRET, T)).toBe('081804');
  });

  it('accepts the current code and one step of skew either way, not two', () => {
    const secret = newSecret();
    const now = T * 1000;
    expect(checkCode(secret, totpAt(secret, T), now, null)).toEqual({ ok: true, step: Math.floor(T / 30) });
    expect(checkCode(secret, totpAt(secret, T - 30), now, null)).toEqual({ ok: true, step: Math.floor(T / 30) - 1 });
    expect(checkCode(secret, totpAt(secret, T + 30), now, null)).toEqual({ ok: true, step: Math.floor(T / 30) + 1 });
    expect(checkCode(secret, totpAt(secret, T - 60), now, null).ok).toBe(false);
    expect(checkCode(secret, totpAt(secret, T + 60), now, null).ok).toBe(false);
  });

  it('refuses a step at or before the last one used (replay)', () => {
    const secret = newSecret();
    const step = Math.floor(T / 30);
    expect(checkCode(secret, totpAt(secret, T), T * 1000, step)).toEqual({ ok: false, reason: 'wrong_code' });
    expect(checkCode(secret, totpAt(secret, T - 30), T * 1000, step - 1)).toEqual({ ok: false, reason: 'wrong_code' });
    expect(checkCode(secret, totpAt(secret, T), T * 1000, step - 1).ok).toBe(true);
  });

  it('refuses malformed codes', () => {
    const secret = newSecret();
    for (const bad of ['12ab56', '12345', '1234567', '']) expect(checkCode(secret, bad, T * 1000, null)).toEqual({ ok: false, reason: 'bad_format' });
  });

  it('the store lets a step be claimed once, even when two logins race', async () => {
    const { store } = tempStore();
    await store.users.add('alice', ['operator'], admin);
    await store.totp.enroll('alice', () => Buffer.from('x'), false, admin);
    const { userId } = (await store.totp.get('alice'))!;
    const claims = await Promise.all([store.totp.claimStep(userId, 100), store.totp.claimStep(userId, 100)]);
    expect(claims.sort()).toEqual([false, true]);
    expect(await store.totp.claimStep(userId, 99)).toBe(false);
    expect(await store.totp.claimStep(userId, 101)).toBe(true);
  });

  it('normalizes imported secrets and refuses short or non-base32 ones', () => {
    expect(normalizeSecret('jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp')).toBe('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
    expect(() => normalizeSecret('JBSWY3DPEHPK3PXP')).toThrow(/too short \(10 bytes/);
    expect(() => normalizeSecret('not base32 at all 0189!')).toThrow(/not base32/);
  });

  it('builds an otpauth URI an authenticator app reads', () => {
    const uri = new URL(otpauthUri('alice', RFC_SECRET));
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(uri.searchParams.get('secret')).toBe(RFC_SECRET);
    expect(uri.searchParams.get('issuer')).toBe('gatehouse');
  });
});
