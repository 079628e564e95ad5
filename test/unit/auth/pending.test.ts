import { describe, expect, it } from 'vitest';
import { clientName, MAX_NAME_CHARS } from '../../../src/auth/names.js';
import { PendingMfa } from '../../../src/auth/pending.js';
import { tempStore } from '../../helpers/store.js';

describe('connections waiting at the TOTP prompt (auth.maxPendingMfa)', () => {
  it('caps one user, not others; a seat is idempotent and freed by leave', async () => {
    const { store, clock } = tempStore();
    const p = new PendingMfa(store.logins, clock, 2, 30_000);
    const [a, b, c] = [{}, {}, {}];
    expect(await p.enter('alice', a)).toBe(true);
    expect(await p.enter('alice', a)).toBe(true); // the same connection passing the key again
    expect(await p.enter('alice', b)).toBe(true);
    expect(await p.enter('alice', c)).toBe(false);
    expect(await p.enter('bob', c)).toBe(true);
    expect(await p.count('alice')).toBe(2);
    await p.leave('alice', a);
    await p.leave('alice', a);
    expect(await p.enter('alice', c)).toBe(true);
    expect(await p.count('alice')).toBe(2);
    await store.close();
  });

  it('a leave sent right after an enter (not awaited) is applied after it', async () => {
    const { store, clock } = tempStore();
    const p = new PendingMfa(store.logins, clock, 1, 30_000);
    const a = {};
    const entered = p.enter('alice', a);
    const left = p.leave('alice', a);
    expect(await entered).toBe(true);
    await left;
    expect(await p.count('alice')).toBe(0);
    await store.close();
  });

  it('frees a seat left behind longer than the login grace time', async () => {
    const { store, clock } = tempStore();
    const p = new PendingMfa(store.logins, clock, 1, 30_000);
    expect(await p.enter('alice', {})).toBe(true);
    clock.advance(29_999);
    expect(await p.enter('alice', {})).toBe(false);
    clock.advance(1);
    expect(await p.enter('alice', {})).toBe(true);
    await store.close();
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
