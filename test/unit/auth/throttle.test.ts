import { describe, expect, it } from 'vitest';
import { AddressThrottle, MfaGrace } from '../../../src/auth/throttle.js';
import { ManualClock } from '../../../src/shared/clock.js';
import { admin, tempStore } from '../../helpers/store.js';

describe('per-address slow-down', () => {
  it('grows with each failure, caps, resets on success and after a quiet period', () => {
    const clock = new ManualClock(0);
    const t = new AddressThrottle(clock);
    const delays = Array.from({ length: 8 }, () => t.failure('10.0.0.1'));
    expect(delays).toEqual([0, 250, 500, 1000, 2000, 4000, 8000, 8000]);
    expect(t.failure('10.0.0.2')).toBe(0);
    t.success('10.0.0.1');
    expect(t.failure('10.0.0.1')).toBe(0);
    expect(t.failure('10.0.0.1')).toBe(250);
    clock.advance(11 * 60_000);
    expect(t.failure('10.0.0.1')).toBe(0);
  });
});

describe('mfaGrace', () => {
  // The trust lives in the store (Store['logins']); the store contract (test/unit/store/contract/
  // logins.test.ts) checks it across processes and revocations on both backends.
  async function withAlice(keys = ['SHA256:k']) {
    const { store, clock } = tempStore();
    await store.users.add('alice', ['operator'], admin);
    await store.users.add('bob', ['operator'], admin);
    await store.keys.add('alice', keys.map((fingerprint) => ({ fingerprint, type: 'ssh-ed25519', bits: 256, publicKey: `ssh-ed25519 ${fingerprint}`, comment: '' })), admin);
    await store.keys.add('bob', [{ fingerprint: 'k3', type: 'ssh-ed25519', bits: 256, publicKey: 'ssh-ed25519 k3', comment: '' }], admin);
    await store.totp.enroll('alice', () => Buffer.from('sealed'), false, admin);
    await store.totp.enroll('bob', () => Buffer.from('sealed'), false, admin);
    const enrolment = (await store.totp.get('alice'))!.createdAt;
    return { store, clock, enrolment, bob: (await store.totp.get('bob'))!.createdAt };
  }

  it('trusts the same user, key, address and TOTP enrolment for the grace period only', async () => {
    const { store, clock, enrolment: e } = await withAlice(['SHA256:k', 'SHA256:other']);
    const g = new MfaGrace(store.logins, clock, 60_000);
    await g.remember('alice', 'SHA256:k', '10.0.0.1', e);
    expect(await g.trusts('alice', 'SHA256:k', '10.0.0.1', e)).toBe(true);
    expect(await g.trusts('alice', 'SHA256:other', '10.0.0.1', e)).toBe(false);
    expect(await g.trusts('alice', 'SHA256:k', '10.0.0.2', e)).toBe(false);
    expect(await g.trusts('alice', 'SHA256:k', '10.0.0.1', e + 1)).toBe(false); // TOTP re-enrolled
    await g.remember('alice', 'SHA256:k', '10.0.0.1', e);
    clock.advance(60_001);
    expect(await g.trusts('alice', 'SHA256:k', '10.0.0.1', e)).toBe(false);
    await store.close();
  });

  it('forget() drops a user, or one key of theirs', async () => {
    const { store, clock, enrolment: e, bob } = await withAlice(['k1', 'k2']);
    const g = new MfaGrace(store.logins, clock, 60_000);
    await g.remember('alice', 'k1', 'a', e);
    await g.remember('alice', 'k2', 'a', e);
    await g.remember('bob', 'k3', 'a', bob);
    await g.forget('alice', 'k1');
    expect([await g.trusts('alice', 'k1', 'a', e), await g.trusts('alice', 'k2', 'a', e)]).toEqual([false, true]);
    await g.forget('alice');
    expect([await g.trusts('alice', 'k2', 'a', e), await g.trusts('bob', 'k3', 'a', bob)]).toEqual([false, true]);
    await store.close();
  });

  it('is off at 0s', async () => {
    const { store, clock, enrolment: e } = await withAlice();
    const g = new MfaGrace(store.logins, clock, 0);
    await g.remember('alice', 'SHA256:k', 'a', e);
    expect(await g.trusts('alice', 'SHA256:k', 'a', e)).toBe(false);
    await store.close();
  });
});
