import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recoverRecordings } from '../../../src/recorder/recovery.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { tempDir } from '../../helpers/cli.js';
import { admin, tempStore } from '../../helpers/store.js';

/** Recovery after a crash touches only this node's recordings: another node's are live there. */
describe('recoverRecordings(node)', () => {
  it('closes the open recordings of this node (and of rows with no node), never another node\'s', async () => {
    const { store } = tempStore();
    const root = tempDir();
    await store.users.add('u', ['operator'], admin);
    for (const [id, node] of [['mine', 'a'], ['theirs', 'b']] as const) {
      await store.sessions.open({ id, user: 'u', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'command', node });
      await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command: 'x', pty: false, host: 'h', login: 'l' });
      fs.writeFileSync(path.join(root, `${id}.cast`), '{"version":2,"width":80,"height":24}\n[0.1,"o","x"]\n[0.2,"o","partial');
      await store.recordings.open({ sessionId: id, channel: 0, path: `${id}.cast`, kind: 'terminal' });
    }
    expect(await recoverRecordings(store, root, () => 'sig', silentLogger(), 'a')).toBe(1);
    expect((await store.recordings.listOpen()).map((r) => r.sessionId)).toEqual(['theirs']);
    // The other node's file is untouched (not cut back to its last complete line).
    expect(fs.readFileSync(path.join(root, 'theirs.cast'), 'utf8')).toMatch(/partial$/);
    store.close();
  });
});
