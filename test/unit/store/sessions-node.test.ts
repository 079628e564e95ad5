import os from 'node:os';
import { expect, it } from 'vitest';
import { forEachBackend } from './backends.js';

forEachBackend('sessions belong to a node', (make) => {
  it('start-up recovery closes only this node\'s sessions (and those from before nodes were named)', async () => {
    const { store, sql } = await make();
    const open = (id: string, node?: string) => store.sessions.open({ id, user: 'alice', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'command', ...(node ? { node } : {}) });
    await open('mine-default');
    await open('mine-named', 'node-a');
    await open('theirs', 'node-b');
    await open('legacy');
    for (const id of ['mine-named', 'theirs']) await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command: 'true', pty: false, host: 'web1', login: 'deploy' });
    await sql("UPDATE sessions SET node = NULL WHERE id = 'legacy'");
    expect((await store.sessions.get('mine-default'))!.node).toBe(os.hostname());

    expect((await store.sessions.closeInterrupted('node-a')).sort()).toEqual(['legacy', 'mine-named']);
    expect((await store.sessions.get('theirs'))!.endedAt).toBeNull();
    expect((await store.sessions.channels('theirs'))[0]!.endedAt).toBeNull();
    expect((await store.sessions.get('mine-named'))!.endReason).toBe('interrupted');
    expect((await store.sessions.channels('mine-named'))[0]!.endedAt).not.toBeNull();
    expect((await store.sessions.get('mine-default'))!.endedAt).toBeNull();

    // Without a node: this machine's host name.
    expect(await store.sessions.closeInterrupted()).toEqual(['mine-default']);
    expect((await store.sessions.get('theirs'))!.endedAt).toBeNull();
    await store.close();
  });
});
