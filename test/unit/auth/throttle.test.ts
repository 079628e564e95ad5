import { describe, expect, it } from 'vitest';
import { AddressThrottle, MfaGrace } from '../../../src/auth/throttle.js';
import { ManualClock } from '../../../src/shared/clock.js';

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
  it('trusts the same user, key, address and TOTP enrolment for the grace period only', () => {
    const clock = new ManualClock(0);
    const g = new MfaGrace(clock, 60_000);
    g.remember('alice', 'SHA256:k', '10.0.0.1', 100);
    expect(g.trusts('alice', 'SHA256:k', '10.0.0.1', 100)).toBe(true);
    expect(g.trusts('alice', 'SHA256:other', '10.0.0.1', 100)).toBe(false);
    expect(g.trusts('alice', 'SHA256:k', '10.0.0.2', 100)).toBe(false);
    expect(g.trusts('alice', 'SHA256:k', '10.0.0.1', 101)).toBe(false); // TOTP re-enrolled
    g.remember('alice', 'SHA256:k', '10.0.0.1', 100);
    clock.advance(60_001);
    expect(g.trusts('alice', 'SHA256:k', '10.0.0.1', 100)).toBe(false);
  });
  it('forget() drops a user, or one key of theirs', () => {
    const g = new MfaGrace(new ManualClock(0), 60_000);
    g.remember('alice', 'k1', 'a', 1);
    g.remember('alice', 'k2', 'a', 1);
    g.remember('bob', 'k3', 'a', 1);
    g.forget('alice', 'k1');
    expect([g.trusts('alice', 'k1', 'a', 1), g.trusts('alice', 'k2', 'a', 1)]).toEqual([false, true]);
    g.forget('alice');
    expect([g.trusts('alice', 'k2', 'a', 1), g.trusts('bob', 'k3', 'a', 1)]).toEqual([false, true]);
  });
  it('is off at 0s', () => {
    const g = new MfaGrace(new ManualClock(0), 0);
    g.remember('alice', 'k', 'a', 1);
    expect(g.trusts('alice', 'k', 'a', 1)).toBe(false);
  });
});
