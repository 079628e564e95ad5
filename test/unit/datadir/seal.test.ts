import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { open, seal } from '../../../src/datadir/seal.js';

describe('sealing secrets at rest', () => {
  const key = randomBytes(32);
  const secret = Buffer.from('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');

  it('round-trips and never stores the plaintext', () => {
    const sealed = seal(key, secret, 'totp:user:1');
    expect(sealed.includes(secret)).toBe(false);
    expect(open(key, sealed, 'totp:user:1')).toEqual(secret);
    expect(seal(key, secret, 'totp:user:1')).not.toEqual(sealed);
  });

  it('fails with another key, another row, or a flipped bit', () => {
    const sealed = seal(key, secret, 'totp:user:1');
    expect(() => open(randomBytes(32), sealed, 'totp:user:1')).toThrow(/cannot be opened/);
    expect(() => open(key, sealed, 'totp:user:2')).toThrow(/cannot be opened/);
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => open(key, flipped, 'totp:user:1')).toThrow(/cannot be opened/);
    expect(() => open(key, Buffer.from([9, 1, 2]), 'totp:user:1')).toThrow(/unknown format/);
  });
});
