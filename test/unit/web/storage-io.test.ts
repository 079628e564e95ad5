import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sweepRetention } from '../../../src/ops/retention.js';
import { CONTENT_MARK, MarkerCache } from '../../../src/recorder/filecontent.js';
import { createLocalStorage } from '../../../src/recorder/storage/local.js';
import type { RecordingStorage } from '../../../src/recorder/storage/types.js';
import { silentLogger } from '../../../src/shared/logger.js';
import type { Store } from '../../../src/store/types.js';
import { filesSection } from '../../../src/web/files.js';
import { integrityOf } from '../../../src/web/pages.js';
import { tempDir } from '../../helpers/cli.js';
import { tempStore } from '../../helpers/store.js';

/**
 * Requests a remote recording storage (S3) would make, counted: every method that reaches the
 * bucket. `remote` answers localStat with undefined, as S3 does for an uploaded recording.
 */
function counting(inner: RecordingStorage, remote: boolean): RecordingStorage & { calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  const count = <A extends unknown[], R>(name: string, fn: (...a: A) => R) => (...a: A): R => { calls[name] = (calls[name] ?? 0) + 1; return fn(...a); };
  return {
    ...inner,
    calls,
    stat: count('stat', inner.stat),
    read: count('read', inner.read),
    stream: count('stream', inner.stream),
    digest: count('digest', inner.digest),
    remove: count('remove', inner.remove),
    localStat: remote ? () => undefined : count('localStat', inner.localStat!),
  };
}

const DAY = 86_400_000;
const sign = (h: string) => Buffer.from(h, 'hex').toString('base64');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A closed recording of `id` channel `ch` with `body` (written in root), its session ended `endedAt`. */
async function recorded(store: Store, root: string, id: string, ch: number, body: string, kind: 'terminal' | 'transfer' = 'terminal') {
  const rel = `2026/11/24/${id}-${ch}.cast`;
  fs.mkdirSync(path.join(root, '2026/11/24'), { recursive: true });
  fs.writeFileSync(path.join(root, rel), body);
  await store.recordings.open({ sessionId: id, channel: ch, path: rel, kind });
  await store.recordings.close({ sessionId: id, channel: ch, state: 'closed', truncated: false, size: Buffer.byteLength(body), sha256: sha(body) }, sign);
  return rel;
}

async function session(store: Store, id: string) {
  await store.sessions.open({ id, user: 'alice', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'command', node: 'n1' });
  await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command: 'true', pty: false, host: 'h', login: 'l' });
}

describe('repeated storage I/O (S3: each call is a request)', () => {
  it('the sessions list\'s quick check asks the bucket nothing; with local storage it stats the file', async () => {
    const { store } = tempStore();
    const root = tempDir();
    const recs = [];
    for (let i = 0; i < 5; i++) {
      await session(store, `s-${i}`);
      await recorded(store, root, `s-${i}`, 0, '{"version":2}\n');
      recs.push(...(await store.recordings.list(`s-${i}`)));
    }
    const s3 = counting(createLocalStorage(root), true);
    for (const r of recs) expect(await integrityOf([r], s3)).toBe('ok');
    expect(s3.calls).toEqual({});
    // The local storage still catches a missing or changed file in the list (a local stat, no request).
    const local = counting(createLocalStorage(root), false);
    fs.rmSync(path.join(root, recs[0]!.path));
    fs.appendFileSync(path.join(root, recs[1]!.path), 'x');
    expect(await Promise.all(recs.map((r) => integrityOf([r], local)))).toEqual(['missing', 'modified', 'ok', 'ok', 'ok']);
    expect(local.calls).toEqual({ localStat: 5 });
    // A storage with no localStat at all (a wrapper) is asked with stat(): a missing file is never 'ok'.
    const bare = { ...counting(createLocalStorage(root), false), localStat: undefined };
    expect(await integrityOf([recs[0]!], bare)).toBe('missing');
    expect(await integrityOf([recs[1]!], bare)).toBe('modified');
    expect(await integrityOf([recs[2]!], bare)).toBe('ok');
    store.close();
  });

  it('the session page reads a closed transfer recording once for its file links, not on every view', async () => {
    const { store } = tempStore();
    const root = tempDir();
    await session(store, 'xfer-1');
    const content = 'the file content\n';
    const own = '2026/11/24/xfer-1-0.files/1';
    const marker = { file: own, direction: 'upload', path: '/tmp/a.txt', size: content.length, sha256: sha(content) };
    await recorded(store, root, 'xfer-1', 0, `{"version":2}\n${JSON.stringify([0.1, 'm', CONTENT_MARK + JSON.stringify(marker)])}\n`, 'transfer');
    await store.files.add({ sessionId: 'xfer-1', channel: 0, protocol: 'sftp', direction: 'upload', path: '/tmp/a.txt', size: content.length, sha256: sha(content) });
    const s3 = counting(createLocalStorage(root), true);
    const cache = new MarkerCache();
    for (let i = 0; i < 3; i++) {
      const out = (await filesSection(store, 'xfer-1', s3, cache)).value;
      expect(out).toContain('href="/sessions/xfer-1/file-1"');
    }
    expect(s3.calls).toEqual({ read: 1 });
    // A fresh cache (another process) reads it again: the cache is what saved the reads.
    await filesSection(store, 'xfer-1', s3, new MarkerCache());
    expect(s3.calls).toEqual({ read: 2 });
    store.close();
  });

  it('retention asks the bucket about a deleted recording once, not on every later sweep', async () => {
    const { store, clock } = tempStore();
    const root = tempDir();
    for (const id of ['old-1', 'old-2']) {
      await session(store, id);
      await recorded(store, root, id, 0, '{"version":2}\n');
      await store.sessions.close(id, 'client_closed', 0, 0);
    }
    clock.advance(10 * DAY);
    const s3 = counting(createLocalStorage(root), true);
    expect(await sweepRetention({ store, root: s3, clock, log: silentLogger(), retention: DAY })).toEqual({ deleted: 2, leftovers: 0 });
    expect(s3.calls).toEqual({ remove: 2 });
    for (let i = 0; i < 3; i++) {
      clock.advance(DAY);
      expect(await sweepRetention({ store, root: s3, clock, log: silentLogger(), retention: DAY })).toEqual({ deleted: 0, leftovers: 0 });
    }
    expect(s3.calls).toEqual({ remove: 2 });
    store.close();
  });

  it('a removal that fails (bucket unreachable) is tried again at the next sweep, then no more', async () => {
    const { store, clock } = tempStore();
    const root = tempDir();
    await session(store, 'old-3');
    const rel = await recorded(store, root, 'old-3', 0, '{"version":2}\n');
    await store.sessions.close('old-3', 'client_closed', 0, 0);
    clock.advance(10 * DAY);
    const local = createLocalStorage(root);
    let down = true;
    const flaky = counting({ ...local, remove: async (r) => { if (down) throw new Error('bucket unreachable'); return local.remove(r); } }, true);
    await expect(sweepRetention({ store, root: flaky, clock, log: silentLogger(), retention: DAY })).rejects.toThrow(/unreachable/);
    expect(fs.existsSync(path.join(root, rel))).toBe(true);
    down = false;
    expect(await sweepRetention({ store, root: flaky, clock, log: silentLogger(), retention: DAY })).toEqual({ deleted: 0, leftovers: 1 });
    expect(fs.existsSync(path.join(root, rel))).toBe(false);
    expect(await sweepRetention({ store, root: flaky, clock, log: silentLogger(), retention: DAY })).toEqual({ deleted: 0, leftovers: 0 });
    expect(flaky.calls).toEqual({ remove: 2 });
    store.close();
  });

  it('a content file that cannot be removed keeps its transfer recording and row for the next sweep (never orphaned)', async () => {
    const { store, clock } = tempStore();
    const root = tempDir();
    await session(store, 'old-4');
    const own = '2026/11/24/old-4-0.files/1';
    fs.mkdirSync(path.join(root, '2026/11/24/old-4-0.files'), { recursive: true });
    fs.writeFileSync(path.join(root, own), 'content');
    const marker = { file: own, direction: 'upload', path: '/tmp/a', size: 7, sha256: sha('content') };
    const rel = await recorded(store, root, 'old-4', 0, `{"version":2}\n${JSON.stringify([0.1, 'm', CONTENT_MARK + JSON.stringify(marker)])}\n`, 'transfer');
    await store.sessions.close('old-4', 'client_closed', 0, 0);
    clock.advance(10 * DAY);
    const local = createLocalStorage(root);
    let down = true;
    const flaky = { ...local, remove: async (r: string) => { if (down && r === own) throw new Error('permission denied'); return local.remove(r); } };
    await expect(sweepRetention({ store, root: flaky, clock, log: silentLogger(), retention: DAY })).rejects.toThrow(/permission denied/);
    expect(fs.existsSync(path.join(root, rel))).toBe(true);
    expect(fs.existsSync(path.join(root, own))).toBe(true);
    down = false;
    expect(await sweepRetention({ store, root: flaky, clock, log: silentLogger(), retention: DAY })).toEqual({ deleted: 0, leftovers: 1 });
    expect(fs.existsSync(path.join(root, own))).toBe(false);
    expect(fs.existsSync(path.join(root, rel))).toBe(false);
    store.close();
  });
});

