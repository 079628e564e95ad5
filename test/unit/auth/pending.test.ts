import { describe, expect, it } from 'vitest';
import { clientName, MAX_NAME_CHARS } from '../../../src/auth/names.js';
import { PendingMfa } from '../../../src/auth/pending.js';
import { ManualClock } from '../../../src/shared/clock.js';

describe('connections waiting at the TOTP prompt (auth.maxPendingMfa)', () => {
  it('caps one user, not others; a seat is idempotent and freed by leave', () => {
    const p = new PendingMfa(new ManualClock(0), 2, 30_000);
    const [a, b, c] = [{}, {}, {}];
    expect(p.enter('alice', a)).toBe(true);
    expect(p.enter('alice', a)).toBe(true); // the same connection passing the key again
    expect(p.enter('alice', b)).toBe(true);
    expect(p.enter('alice', c)).toBe(false);
    expect(p.enter('bob', c)).toBe(true);
    expect(p.count('alice')).toBe(2);
    p.leave('alice', a);
    p.leave('alice', a);
    expect(p.enter('alice', c)).toBe(true);
    expect(p.count('alice')).toBe(2);
  });

  it('frees a seat left behind longer than the login grace time', () => {
    const clock = new ManualClock(0);
    const p = new PendingMfa(clock, 1, 30_000);
    expect(p.enter('alice', {})).toBe(true);
    clock.advance(29_999);
    expect(p.enter('alice', {})).toBe(false);
    clock.advance(1);
    expect(p.enter('alice', {})).toBe(true);
  });
});

describe('client-sent user names in audit rows and logs', () => {
  it('keeps real names, cuts long ones with the original length', () => {
    expect(clientName('alice')).toBe('alice');
    expect(clientName('a'.repeat(MAX_NAME_CHARS))).toBe('a'.repeat(MAX_NAME_CHARS));
    const cut = clientName('x'.repeat(30_000));
    expect(cut).toBe(`${'x'.repeat(MAX_NAME_CHARS)}…[cut, 30000 chars]`);
  });

  it('does not split a surrogate pair', () => {
    const cut = clientName(`${'a'.repeat(MAX_NAME_CHARS - 1)}😀${'b'.repeat(100)}`);
    expect(cut.startsWith(`${'a'.repeat(MAX_NAME_CHARS - 1)}…`)).toBe(true);
    expect(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(cut)).toBe(false);
  });
});
