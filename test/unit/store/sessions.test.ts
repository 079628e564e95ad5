import { expect, it } from 'vitest';
import { forEachBackend } from './backends.js';

forEachBackend('sessions store', (make) => {
  it('pages and counts in SQL, newest first, with filters', async () => {
    const { store, clock } = await make();
    for (let i = 0; i < 120; i++) {
      clock.advance(1000);
      await store.sessions.open({ id: `s-${String(i).padStart(3, '0')}`, user: i % 3 === 0 ? 'alice' : 'bob', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'command' });
      if (i % 2 === 0) await store.sessions.close(`s-${String(i).padStart(3, '0')}`, 'client_closed', i, 2 * i);
    }
    expect(await store.sessions.count({})).toBe(120);
    expect(await store.sessions.count({ user: 'alice' })).toBe(40);
    expect(await store.sessions.count({ live: true })).toBe(60);
    const page2 = await store.sessions.list({ limit: 50, offset: 50 });
    expect(page2.map((s) => s.id).slice(0, 2)).toEqual(['s-069', 's-068']);
    await store.sessions.close('s-001', 'revoked:user_disabled', 0, 0);
    await store.sessions.close('s-003', 'interrupted', 0, 0);
    await store.sessions.close('s-005', 'max_duration', 0, 0);
    expect(await store.sessions.count({ status: 'live' })).toBe(57);
    expect(await store.sessions.count({ status: 'terminated' })).toBe(2);
    expect(await store.sessions.count({ status: 'interrupted' })).toBe(1);
    expect(await store.sessions.count({ status: 'ended' })).toBe(60);
    expect((await store.sessions.list({ status: 'terminated' })).map((s) => s.id).sort()).toEqual(['s-001', 's-005']);
    expect(await store.sessions.count({ ids: ['s-001', 's-002', 'nope'] })).toBe(2);
    expect(await store.sessions.count({ ids: [] })).toBe(0);
    expect(await store.sessions.bytesRelayed()).toBe([...Array(60).keys()].reduce((n, k) => n + 3 * (2 * k), 0));
  });
});
