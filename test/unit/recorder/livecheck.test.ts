import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LivenessChecks } from '../../../src/recorder/livecheck.js';
import { LiveHub } from '../../../src/recorder/livehub.js';
import { LiveSource } from '../../../src/recorder/livesource.js';
import { createLocalStorage } from '../../../src/recorder/storage/local.js';
import type { Store } from '../../../src/store/types.js';
import { tempDir } from '../../helpers/cli.js';
import { tempStore } from '../../helpers/store.js';

const HEADER = '{"version":2,"width":80,"height":24}';

describe('LivenessChecks: one store check per live channel, shared by its viewers', () => {
  it('viewers of one channel share an answer younger than maxAgeMs; another channel has its own', async () => {
    let now = 0;
    const asked: string[] = [];
    const checks = new LivenessChecks(async (id, ch) => { asked.push(`${id}/${ch}`); return true; }, 1000, () => now);
    const a = checks.acquire('s', 0);
    const b = checks.acquire('s', 0);
    const other = checks.acquire('s', 1);
    expect(await a.isLive()).toBe(true);
    expect(await b.isLive()).toBe(true);
    now = 999;
    expect(await b.isLive()).toBe(true);
    expect(asked).toEqual(['s/0']);
    await other.isLive();
    expect(asked).toEqual(['s/0', 's/1']);
    now = 1000;
    await a.isLive();
    await b.isLive();
    expect(asked).toEqual(['s/0', 's/1', 's/0']);
    expect(checks.size).toBe(2);
    a.release();
    a.release(); // twice: still one viewer left
    expect(checks.size).toBe(2);
    b.release();
    other.release();
    expect(checks.size).toBe(0);
  });

  it('a check still running answers every viewer until it is 5 intervals old; a failed one is asked again', async () => {
    let now = 0;
    let calls = 0;
    const finishers: ((v: boolean) => void)[] = [];
    let fail = false;
    const checks = new LivenessChecks(() => {
      calls++;
      if (fail) return Promise.reject(new Error('store down'));
      return new Promise<boolean>((r) => { finishers.push(r); });
    }, 1000, () => now);
    const a = checks.acquire('s', 0);
    const b = checks.acquire('s', 0);
    const first = a.isLive();
    now = 4999;
    const second = b.isLive();
    expect(calls).toBe(1);
    // The store hangs: a viewer asking later does not wait on the hung check for ever.
    now = 5000;
    const third = checks.acquire('s', 0).isLive();
    expect(calls).toBe(2);
    finishers[1]!(false);
    expect(await third).toBe(false);
    finishers[0]!(false);
    expect([await first, await second]).toEqual([false, false]);
    fail = true;
    now = 10_000;
    await expect(a.isLive()).rejects.toThrow('store down');
    await expect(b.isLive()).rejects.toThrow('store down');
    expect(calls).toBe(4);
  });
});

describe('LiveSource: five viewers of one followed channel', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('cost one liveness check a second, not five, and all end when the channel closes', async () => {
    const { store } = tempStore();
    const root = tempDir();
    const storage = createLocalStorage(root);
    await store.sessions.open({ id: 'sess-1', user: 'alice', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'command', node: 'gh/w2' });
    await store.sessions.openChannel({ sessionId: 'sess-1', channel: 0, kind: 'shell', command: null, pty: true, host: 'h', login: 'l' });
    const rel = '2026/11/24/sess-1-0.cast';
    await store.recordings.open({ sessionId: 'sess-1', channel: 0, path: rel, kind: 'terminal' });
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), `${HEADER}\n`);

    const calls = { get: 0, list: 0 };
    const counted = {
      sessions: { ...store.sessions, get: (id: string) => { calls.get++; return store.sessions.get(id); } },
      recordings: { ...store.recordings, list: (id: string) => { calls.list++; return store.recordings.list(id); } },
    } as unknown as Store;

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const source = new LiveSource(new LiveHub(), counted, storage, { pollMs: 250, checkMs: 1000 });
    const views = Array.from({ length: 5 }, () => ({ lines: [] as (string | null)[] }));
    for (const v of views) {
      const sub = await source.subscribe('sess-1', 0, (l) => { v.lines.push(l); });
      expect(sub?.at).toBe('spool');
    }
    // Each subscribe looked the recording up once (get + list); what follows is liveness checks only.
    calls.get = 0;
    calls.list = 0;
    for (let i = 0; i < 40; i++) await vi.advanceTimersByTimeAsync(250);
    // Ten seconds: one shared check a second (five viewers each checking would make about 50).
    expect(calls.get).toBeGreaterThanOrEqual(9);
    expect(calls.get).toBeLessThanOrEqual(11);
    expect(calls.list).toBe(calls.get);

    await store.recordings.close({ sessionId: 'sess-1', channel: 0, state: 'closed', truncated: false, size: 1, sha256: 'ab'.repeat(32) }, (h) => h);
    for (let i = 0; i < 20 && views.some((v) => v.lines.at(-1) !== null); i++) await vi.advanceTimersByTimeAsync(250);
    for (const v of views) expect(v.lines).toEqual([HEADER, null]);
    vi.useRealTimers();
    await storage.stop(0);
    store.close();
  });
});
