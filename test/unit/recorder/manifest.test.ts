import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { CONTENT_MARK } from '../../../src/recorder/filecontent.js';
import { EXPORT_CONTENT_BYTES, exportManifest } from '../../../src/recorder/manifest.js';
import { signer } from '../../../src/recorder/recorder.js';
import { createLocalStorage } from '../../../src/recorder/storage/local.js';
import { tempDir } from '../../helpers/cli.js';
import { tempStore } from '../../helpers/store.js';

const hostKey = Buffer.from(ssh2.utils.generateKeyPairSync('ed25519').private);
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('export bundle: captured file contents', () => {
  it('carries contents up to the export limit; those past it are listed with file null, their verdict and a note', async () => {
    expect(EXPORT_CONTENT_BYTES).toBe(256 * 1024 * 1024);
    const { store } = tempStore();
    const root = tempDir();
    const id = 'exp-1';
    await store.sessions.open({ id, user: 'alice', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'command' });
    await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command: 'sftp', pty: false, host: 'h', login: 'l' });
    const rel = `2026/11/24/${id}-0.cast`;
    fs.mkdirSync(path.join(root, `2026/11/24/${id}-0.files`), { recursive: true });
    const lines = ['{"version":2}'];
    for (const n of [1, 2, 3]) {
      const content = String(n).repeat(40);
      const file = `2026/11/24/${id}-0.files/${n}`;
      fs.writeFileSync(path.join(root, file), content);
      lines.push(JSON.stringify([n / 10, 'm', CONTENT_MARK + JSON.stringify({ file, direction: 'upload', path: `/tmp/${n}`, size: 40, sha256: sha(content) })]));
    }
    const body = lines.join('\n') + '\n';
    fs.writeFileSync(path.join(root, rel), body);
    await store.recordings.open({ sessionId: id, channel: 0, path: rel, kind: 'transfer' });
    await store.recordings.close({ sessionId: id, channel: 0, state: 'closed', truncated: false, size: Buffer.byteLength(body), sha256: sha(body) }, signer(hostKey));
    const s = (await store.sessions.get(id))!;
    const dirs = { recordings: createLocalStorage(root), hostKey, retention: null };

    const all = await exportManifest(store, dirs, s, 'test', 0);
    expect((all.manifest.contents as { file: string | null }[]).map((c) => c.file)).toEqual([`${id}-0.cast.file-1`, `${id}-0.cast.file-2`, `${id}-0.cast.file-3`]);

    // A limit of 100 bytes: two 40-byte files fit, the third is listed but not carried.
    const capped = await exportManifest(store, dirs, s, 'test', 0, 100);
    const contents = capped.manifest.contents as { file: string | null; verdict: string; note?: string; sha256: string }[];
    expect(contents.map((c) => [c.file, c.verdict, c.note])).toEqual([
      [`${id}-0.cast.file-1`, 'intact', undefined], [`${id}-0.cast.file-2`, 'intact', undefined], [null, 'intact', 'not included: export limit'],
    ]);
    expect(contents[2]!.sha256).toBe(sha('3'.repeat(40)));
    expect(capped.files.map((f) => f.name)).toEqual([`${id}-0.cast.file-1`, `${id}-0.cast.file-2`, `${id}-0.cast`]);
    store.close();
  });
});
