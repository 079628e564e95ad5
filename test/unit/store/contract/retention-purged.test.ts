import { expect, it } from 'vitest';
import { forEachBackend } from '../backends.js';

const DAY = 86_400_000;
const sign = (h: string) => Buffer.from(h, 'hex').toString('base64');

forEachBackend('retention: a deleted recording whose files are gone is not checked again', (make) => {
  it('deleted() lists a marked recording until purged(); purged() touches only deleted rows', async () => {
    const { store, clock } = await make();
    for (const id of ['a', 'b']) {
      await store.sessions.open({ id, user: 'alice', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'command' });
      await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command: 'true', pty: false, host: 'web1', login: 'deploy' });
      await store.recordings.open({ sessionId: id, channel: 0, path: `2026/11/24/${id}-0.cast`, kind: 'terminal' });
      await store.recordings.close({ sessionId: id, channel: 0, state: 'closed', truncated: false, size: 1, sha256: 'ab'.repeat(32) }, sign);
      await store.sessions.close(id, 'client_closed', 0, 0);
    }
    clock.advance(10 * DAY);
    // Not deleted: purged() changes nothing (the sweep could never skip a recording still kept).
    await store.retention.purged('b', 0);
    expect(await store.retention.markDeleted('a', 0, { actor: 'system' })).toBe(true);
    expect((await store.retention.deleted()).map((r) => r.sessionId)).toEqual(['a']);
    await store.retention.purged('a', 0);
    await store.retention.purged('a', 0);
    expect(await store.retention.deleted()).toEqual([]);
    // b is still an expired, kept recording, deleted and listed like any other.
    expect((await store.retention.expired(clock.now(), 10)).map((r) => r.sessionId)).toEqual(['b']);
    expect(await store.retention.markDeleted('b', 0, { actor: 'system' })).toBe(true);
    expect((await store.retention.deleted()).map((r) => r.sessionId)).toEqual(['b']);
    // The row keeps what verify needs (its hash and place in the chain).
    expect((await store.recordings.list('a'))[0]).toMatchObject({ sha256: 'ab'.repeat(32), state: 'closed' });
    await store.close();
  });
});
