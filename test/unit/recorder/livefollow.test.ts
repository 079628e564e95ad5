import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { followSpool } from '../../../src/recorder/livefollow.js';
import { LiveHub } from '../../../src/recorder/livehub.js';
import { LiveSource } from '../../../src/recorder/livesource.js';
import { createLocalStorage } from '../../../src/recorder/storage/local.js';
import { poll } from '../../helpers/proc.js';
import { tempDir } from '../../helpers/cli.js';
import { tempStore } from '../../helpers/store.js';

const HEADER = '{"version":2,"width":80,"height":24}';
const ev = (t: number, s: string) => JSON.stringify([t, 'o', s]);

function collector() {
  const lines: (string | null)[] = [];
  return { lines, send: (l: string | null) => { lines.push(l); } };
}

describe('following a spool file (live view of another process\'s recording)', () => {
  it('sends the header and the lines so far, then each complete line appended, then null once the channel is not live', async () => {
    const file = path.join(tempDir(), 'a.cast');
    fs.writeFileSync(file, `${HEADER}\n${ev(0.1, 'one')}\n`);
    let live = true;
    const c = collector();
    const f = followSpool(file, c.send, { pollMs: 10, checkMs: 10, isLive: async () => live })!;
    expect(c.lines).toEqual([HEADER, ev(0.1, 'one')]);
    // A line still being written is not sent half.
    const two = ev(0.2, 'two');
    fs.appendFileSync(file, two.slice(0, 5));
    await new Promise((r) => setTimeout(r, 60));
    expect(c.lines).toHaveLength(2);
    fs.appendFileSync(file, `${two.slice(5)}\n${ev(0.3, 'héllo ✓')}\n`);
    await poll('the appended lines', () => (c.lines.length === 4 ? true : undefined), 5_000);
    expect(c.lines.slice(2)).toEqual([two, ev(0.3, 'héllo ✓')]);
    // The last lines written before the row closed still arrive, then the end.
    fs.appendFileSync(file, `${ev(0.4, 'last')}\n`);
    live = false;
    await poll('the end', () => (c.lines.at(-1) === null ? true : undefined), 5_000);
    expect(c.lines.slice(4)).toEqual([ev(0.4, 'last'), null]);
    f.stop();
  });

  it('a late joiner gets the header and at most the backlog, from a line boundary', () => {
    const file = path.join(tempDir(), 'big.cast');
    const body = Array.from({ length: 2000 }, (_, i) => ev(i, `line-${i}-${'x'.repeat(40)}`)).join('\n') + '\n';
    fs.writeFileSync(file, `${HEADER}\n${body}`);
    const c = collector();
    const f = followSpool(file, c.send, { pollMs: 1000, backlogBytes: 4096, isLive: async () => true })!;
    f.stop();
    expect(c.lines[0]).toBe(HEADER);
    const rest = c.lines.slice(1) as string[];
    expect(rest.length).toBeGreaterThan(10);
    expect(rest.reduce((n, l) => n + l.length + 1, 0)).toBeLessThanOrEqual(4096);
    for (const l of rest) expect(() => JSON.parse(l)).not.toThrow();
    expect(rest.at(-1)).toBe(ev(1999, `line-1999-${'x'.repeat(40)}`));
  });

  it('keeps reading a file removed after it was opened (the S3 storage drops the spool copy after upload)', async () => {
    const file = path.join(tempDir(), 'gone.cast');
    fs.writeFileSync(file, `${HEADER}\n${ev(0.1, 'kept')}\n`);
    let live = true;
    const c = collector();
    const f = followSpool(file, c.send, { pollMs: 10, checkMs: 10, isLive: async () => live })!;
    fs.rmSync(file);
    live = false;
    await poll('the end', () => (c.lines.at(-1) === null ? true : undefined), 5_000);
    expect(c.lines).toEqual([HEADER, ev(0.1, 'kept'), null]);
    f.stop();
  });

  it('a long header (a 32 KiB command, JSON-escaped) is followed, and one still being written is waited for', async () => {
    const dir = tempDir();
    const long = JSON.stringify({ version: 2, width: 80, height: 24, command: '\u0001'.repeat(32 * 1024) });
    expect(long.length).toBeGreaterThan(128 * 1024);
    fs.writeFileSync(path.join(dir, 'long.cast'), `${long}\n${ev(0.1, 'one')}\n`);
    const c = collector();
    followSpool(path.join(dir, 'long.cast'), c.send, { pollMs: 1000, isLive: async () => true })!.stop();
    expect(c.lines).toEqual([long, ev(0.1, 'one')]);
    // The header line is not complete yet: the view waits for it instead of saying "not live".
    const half = path.join(dir, 'half.cast');
    fs.writeFileSync(half, long.slice(0, 100_000));
    const w = collector();
    let live = true;
    const f = followSpool(half, w.send, { pollMs: 10, checkMs: 10, isLive: async () => live });
    expect(f).not.toBeNull();
    await new Promise((r) => setTimeout(r, 50));
    expect(w.lines).toEqual([]);
    fs.appendFileSync(half, `${long.slice(100_000)}\n${ev(0.2, 'two')}\n`);
    await poll('the header', () => (w.lines.length === 2 ? true : undefined), 5_000);
    expect(w.lines).toEqual([long, ev(0.2, 'two')]);
    live = false;
    await poll('the end', () => (w.lines.at(-1) === null ? true : undefined), 5_000);
    f!.stop();
    // A header never completed ends with the channel.
    fs.writeFileSync(path.join(dir, 'never.cast'), '{"version":');
    const n = collector();
    let nLive = true;
    const g = followSpool(path.join(dir, 'never.cast'), n.send, { pollMs: 10, checkMs: 10, isLive: async () => nLive })!;
    nLive = false;
    await poll('the end', () => (n.lines.at(-1) === null ? true : undefined), 5_000);
    expect(n.lines).toEqual([null]);
    g.stop();
  });

  it('a missing file or a symlink is not followed', () => {
    const dir = tempDir();
    fs.symlinkSync('/etc/passwd', path.join(dir, 'link.cast'));
    for (const name of ['none.cast', 'link.cast']) {
      const c = collector();
      expect(followSpool(path.join(dir, name), c.send, { isLive: async () => true })).toBeNull();
      expect(c.lines).toEqual([]);
    }
  });

  it('a failing liveness check ends the view', async () => {
    const file = path.join(tempDir(), 'err.cast');
    fs.writeFileSync(file, `${HEADER}\n`);
    const c = collector();
    let err: unknown;
    followSpool(file, c.send, { pollMs: 10, checkMs: 10, isLive: async () => { throw new Error('store down'); }, onError: (e) => { err = e; } });
    await poll('the end', () => (c.lines.at(-1) === null ? true : undefined), 5_000);
    expect(String(err)).toContain('store down');
  });
});

describe('LiveSource: where a live channel can be watched from', () => {
  async function setup() {
    const { store } = tempStore();
    const root = tempDir();
    const storage = createLocalStorage(root);
    const hub = new LiveHub();
    await store.sessions.open({ id: 'sess-1', user: 'alice', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'command', node: 'gh/w2' });
    await store.sessions.openChannel({ sessionId: 'sess-1', channel: 0, kind: 'shell', command: null, pty: true, host: 'h', login: 'l' });
    const rel = '2026/11/24/sess-1-0.cast';
    return { store, root, storage, hub, rel, source: new LiveSource(hub, store, storage, { pollMs: 10, checkMs: 10 }) };
  }

  it('this process\'s hub first; else the spool file on this machine; else the node holding it; a closed one is not live', async () => {
    const { store, root, storage, hub, rel, source } = await setup();
    expect(await source.where('sess-1', 0)).toBeNull();
    await store.recordings.open({ sessionId: 'sess-1', channel: 0, path: rel, kind: 'terminal' });
    // Row open, no file here: another node with its own data directory holds it.
    expect(await source.where('sess-1', 0)).toEqual({ at: 'node', node: 'gh/w2' });
    expect(await source.subscribe('sess-1', 0, () => undefined)).toEqual({ at: 'node', node: 'gh/w2' });
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), `${HEADER}\n${ev(0.1, 'typed-here')}\n`);
    expect(await source.where('sess-1', 0)).toEqual({ at: 'spool' });
    const c = collector();
    const sub = await source.subscribe('sess-1', 0, c.send);
    expect(sub?.at).toBe('spool');
    expect(c.lines).toEqual([HEADER, ev(0.1, 'typed-here')]);
    // The recording's row closes: the view ends.
    await store.recordings.close({ sessionId: 'sess-1', channel: 0, state: 'closed', truncated: false, size: 1, sha256: 'ab'.repeat(32) }, (h) => h);
    await poll('the end', () => (c.lines.at(-1) === null ? true : undefined), 5_000);
    expect(await source.where('sess-1', 0)).toBeNull();
    hub.open('sess-1', 0, Buffer.from(`${HEADER}\n`));
    expect(await source.where('sess-1', 0)).toEqual({ at: 'process' });
    await storage.stop(0);
    store.close();
  });

  it('a row naming a path outside the spool is never followed', async () => {
    const { store, source } = await setup();
    await store.recordings.open({ sessionId: 'sess-1', channel: 0, path: '../../../../etc/passwd', kind: 'terminal' });
    expect(await source.where('sess-1', 0)).toBeNull();
    expect(await source.subscribe('sess-1', 0, () => { throw new Error('nothing may be sent'); })).toBeNull();
    store.close();
  });
});
