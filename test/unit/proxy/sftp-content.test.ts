import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelContents, CONTENT_MARK, contentChecks, contentMarkers, removeContents, type ContentMarker } from '../../../src/recorder/filecontent.js';
import { createLocalStorage } from '../../../src/recorder/storage/local.js';
import { ScpParser } from '../../../src/proxy/sftp/scp.js';
import { SftpTracker, type SftpEvent } from '../../../src/proxy/sftp/tracker.js';
import { Framer, SSH_FX, SSH_FXF, SSH_FXP, WireError } from '../../../src/proxy/sftp/wire.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { Offload } from '../../../src/shared/offload.js';
import type { RecordingRecord } from '../../../src/store/types.js';
import { tempDir } from '../../helpers/cli.js';
import { tempStore } from '../../helpers/store.js';
import { sweepRetention } from '../../../src/ops/retention.js';
import { verifyRecordings } from '../../../src/recorder/verify.js';

/**
 * Content capture (recording.fileContent): the stored file is exactly the content the hash covers,
 * only whole files within maxBytes are kept (nothing at all otherwise), every stored file is marked
 * for the recording, and the markers cannot be forged by bytes that are not gatehouse's own.
 */
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const str = (s: string | Buffer) => { const b = Buffer.isBuffer(s) ? s : Buffer.from(s); return Buffer.concat([u32(b.length), b]); };
const pkt = (type: number, ...parts: Buffer[]) => { const body = Buffer.concat([Buffer.from([type]), ...parts]); return Buffer.concat([u32(body.length), body]); };
const ok = (id: number) => pkt(SSH_FXP.STATUS, u32(id), u32(SSH_FX.OK), str(''), str(''));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const H = Buffer.from([0, 0, 0, 7]);
const W = SSH_FXF.WRITE | SSH_FXF.CREAT | SSH_FXF.TRUNC;

const offload = new Offload();
beforeAll(() => offload.start());
afterAll(() => offload.stop());

function world(maxBytes: number) {
  const root = tempDir('gatehouse-content-unit-');
  const storage = createLocalStorage(root);
  const marks: ContentMarker[] = [];
  const contents = new ChannelContents({ maxBytes, storage, offload, log: silentLogger() }, 's-1', 0, (t) => {
    expect(t.startsWith(CONTENT_MARK)).toBe(true);
    marks.push(JSON.parse(t.slice(CONTENT_MARK.length)) as ContentMarker);
  });
  const events: SftpEvent[] = [];
  const t = new SftpTracker((e) => events.push(e), false, () => contents.capture());
  const c = new Framer();
  const s = new Framer();
  const stored = () => walk(root).map((f) => fs.readFileSync(f));
  return {
    root, storage, marks, events, stored, tracker: t,
    client: (b: Buffer) => { for (const p of c.push(b)) t.client(p); },
    server: (b: Buffer) => { for (const p of s.push(b)) t.server(p); },
  };
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** Wait for the writing thread: the files are complete once their sinks closed. */
const settle = () => new Promise((r) => setTimeout(r, 300));

function upload(x: ReturnType<typeof world>, data: Buffer, pieces: [number, number][], opts: { flags?: number; id?: number } = {}) {
  const id = opts.id ?? 1;
  x.client(pkt(SSH_FXP.INIT, u32(3)));
  x.server(pkt(SSH_FXP.VERSION, u32(3)));
  x.client(pkt(SSH_FXP.OPEN, u32(id), str('/srv/up.bin'), u32(opts.flags ?? W), u32(0)));
  x.server(pkt(SSH_FXP.HANDLE, u32(id), str(H)));
  pieces.forEach(([a, b], i) => x.client(pkt(SSH_FXP.WRITE, u32(id + 10 + i), str(H), u64(a), str(data.subarray(a, b)))));
  pieces.forEach((_p, i) => x.server(ok(id + 10 + i)));
  x.client(pkt(SSH_FXP.CLOSE, u32(id + 5), str(H)));
  x.server(ok(id + 5));
}

describe('content capture of SFTP files', () => {
  it('a pipelined (out-of-order) upload is stored byte for byte, marked with its SHA-256, 0600', async () => {
    const x = world(1_000_000);
    const data = randomBytes(100_000);
    upload(x, data, [[32768, 65536], [0, 32768], [65536, 100_000]]);
    await settle();
    const close = x.events.find((e) => e.type === 'close')!;
    expect(close).toMatchObject({ sha256: sha(data), content: 'stored' });
    expect(x.stored()).toEqual([data]);
    expect(x.marks).toEqual([expect.objectContaining({ direction: 'upload', path: '/srv/up.bin', size: 100_000, sha256: sha(data) })]);
    expect(x.marks[0]!.file).toMatch(/^\d{4}\/\d\d\/\d\d\/s-1-0\.files\/1$/);
    expect(fs.statSync(path.join(x.root, x.marks[0]!.file)).mode & 0o777).toBe(0o600);
  });

  it('a file over maxBytes, a resumed (seek) upload and a failed write store nothing and mark nothing', async () => {
    const data = randomBytes(50_000);
    const big = world(49_999);
    upload(big, data, [[0, 25_000], [25_000, 50_000]]);
    const seek = world(1_000_000);
    upload(seek, data, [[10_000, 50_000]], { flags: SSH_FXF.WRITE });
    const failed = world(1_000_000);
    failed.client(pkt(SSH_FXP.INIT, u32(3)));
    failed.client(pkt(SSH_FXP.OPEN, u32(1), str('/srv/f'), u32(W), u32(0)));
    failed.server(pkt(SSH_FXP.HANDLE, u32(1), str(H)));
    failed.client(pkt(SSH_FXP.WRITE, u32(2), str(H), u64(0), str(data)));
    failed.server(pkt(SSH_FXP.STATUS, u32(2), u32(SSH_FX.FAILURE), str(''), str('')));
    failed.client(pkt(SSH_FXP.CLOSE, u32(3), str(H)));
    failed.server(ok(3));
    await settle();
    expect(big.events.find((e) => e.type === 'close')).toMatchObject({ sha256: sha(data), content: 'too large' });
    expect(seek.events.find((e) => e.type === 'close')).toMatchObject({ sha256: 'partial', content: 'not whole' });
    expect(failed.events.find((e) => e.type === 'close')).toMatchObject({ sha256: 'partial', content: 'not whole' });
    for (const x of [big, seek, failed]) {
      expect(x.stored()).toEqual([]);
      expect(x.marks).toEqual([]);
    }
  });

  it('a download read to EOF is stored; one not read to the end is not', async () => {
    const x = world(1_000_000);
    const data = randomBytes(40_000);
    x.client(pkt(SSH_FXP.INIT, u32(3)));
    for (const [h, id, full] of [[Buffer.from([1]), 1, true], [Buffer.from([2]), 100, false]] as const) {
      x.client(pkt(SSH_FXP.OPEN, u32(id), str(`/srv/d${id}`), u32(SSH_FXF.READ), u32(0)));
      x.server(pkt(SSH_FXP.HANDLE, u32(id), str(h)));
      x.client(pkt(SSH_FXP.READ, u32(id + 1), str(h), u64(0), u32(32_768)));
      x.client(pkt(SSH_FXP.READ, u32(id + 2), str(h), u64(32_768), u32(32_768)));
      x.server(pkt(SSH_FXP.DATA, u32(id + 1), str(data.subarray(0, 32_768))));
      if (full) {
        x.server(pkt(SSH_FXP.DATA, u32(id + 2), str(data.subarray(32_768))));
        x.client(pkt(SSH_FXP.READ, u32(id + 3), str(h), u64(40_000), u32(32_768)));
        x.server(pkt(SSH_FXP.STATUS, u32(id + 3), u32(SSH_FX.EOF), str(''), str('')));
      }
      x.client(pkt(SSH_FXP.CLOSE, u32(id + 5), str(h)));
      x.server(ok(id + 5));
    }
    await settle();
    expect(x.events.filter((e) => e.type === 'close').map((e) => (e as { content?: string }).content)).toEqual(['stored', 'not whole']);
    expect(x.stored()).toEqual([data]);
  });

  it('a stream ended as malformed leaves no content of its open files', async () => {
    const x = world(1_000_000);
    x.client(pkt(SSH_FXP.INIT, u32(3)));
    x.client(pkt(SSH_FXP.OPEN, u32(1), str('/srv/f'), u32(W), u32(0)));
    x.server(pkt(SSH_FXP.HANDLE, u32(1), str(H)));
    x.client(pkt(SSH_FXP.WRITE, u32(2), str(H), u64(0), str(randomBytes(5000))));
    expect(() => x.client(pkt(77, u32(3)))).toThrow(WireError);
    x.tracker.discard();
    await settle();
    expect(x.stored()).toEqual([]);
    expect(x.marks).toEqual([]);
  });

  it('random packets with capture on: only WireErrors, and nothing stored unmarked', async () => {
    const worlds: ReturnType<typeof world>[] = [];
    for (let round = 0; round < 200; round++) {
      const x = world(10_000);
      worlds.push(x);
      for (let i = 0; i < 20; i++) {
        const body = randomBytes(1 + Math.floor(Math.random() * 40));
        body[0] = [SSH_FXP.OPEN, SSH_FXP.WRITE, SSH_FXP.CLOSE, SSH_FXP.READ, 200, 99][i % 6]!;
        try { x.tracker.client(body); } catch (err) { expect(err).toBeInstanceOf(WireError); }
        const reply = randomBytes(1 + Math.floor(Math.random() * 40));
        reply[0] = [SSH_FXP.HANDLE, SSH_FXP.STATUS, SSH_FXP.DATA][i % 3]!;
        try { x.tracker.server(reply); } catch (err) { expect(err).toBeInstanceOf(WireError); }
      }
      x.tracker.end();
    }
    await settle();
    for (const x of worlds) expect(x.stored()).toHaveLength(x.marks.length);
  });
});

describe('content capture of scp -O files', () => {
  it('stores a whole C record within maxBytes; a cut one or a larger one is not stored', async () => {
    const root = tempDir('gatehouse-content-scp-');
    const storage = createLocalStorage(root);
    const marks: string[] = [];
    const contents = new ChannelContents({ maxBytes: 1000, storage, offload, log: silentLogger() }, 's-2', 1, (t) => marks.push(t));
    const got: { content?: string; sha256: string }[] = [];
    const p = new ScpParser({ direction: 'upload', target: '/srv', intoDir: true }, (f) => got.push(f), () => contents.capture());
    const a = randomBytes(600);
    const b = randomBytes(1001);
    p.push(Buffer.concat([Buffer.from('C0644 600 a\n'), a, Buffer.from([0]), Buffer.from('C0644 1001 b\n'), b, Buffer.from([0]), Buffer.from('C0644 500 c\n'), randomBytes(100)]));
    p.end();
    await settle();
    expect(got.map((f) => [f.sha256 === 'partial' ? 'partial' : 'hash', f.content])).toEqual([['hash', 'stored'], ['hash', 'too large'], ['partial', 'not whole']]);
    expect(walk(root).map((f) => fs.readFileSync(f))).toEqual([a]);
    expect(marks).toHaveLength(1);
  });
});

describe('content markers', () => {
  const line = (ev: unknown) => JSON.stringify(ev);
  const marker: ContentMarker = { file: '2026/01/01/s-0.files/1', direction: 'upload', path: '/x', size: 3, sha256: 'a'.repeat(64) };

  it('are read only from gatehouse marker events, never from output or garbage', () => {
    const cast = Buffer.from([
      line({ version: 2, width: 80, height: 24 }),
      line([0.1, 'm', CONTENT_MARK + JSON.stringify(marker)]),
      line([0.2, 'o', CONTENT_MARK + JSON.stringify({ ...marker, file: 'forged' })]),
      line([0.3, 'm', 'gatehouse file content: {not json']),
      '[0.4, "m", "gatehouse file content: ', 'garbage gatehouse file content',
    ].join('\n'));
    expect(contentMarkers(cast, '2026/01/01/s-0.cast')).toEqual([marker]);
  });

  it("name only files of their own recording: never another session's recording, a parent or another folder", () => {
    const forged = ['2026/05/01/victim-0.cast', '2026/01/01/s-0.files/../../../x', '2026/01/01/s-1.files/1', '2026/01/01/s-0.files/1/2', '/etc/passwd', '2026/01/01/s-0.files/'];
    const cast = Buffer.from([marker.file, ...forged].map((file) => line([0, 'm', CONTENT_MARK + JSON.stringify({ ...marker, file })])).join('\n'));
    expect(contentMarkers(cast, '2026/01/01/s-0.cast')).toEqual([marker]);
    expect(contentMarkers(cast, '2026/01/01/other-0.cast')).toEqual([]);
  });

  it('verify: intact, modified and missing content files, only for intact transfer recordings', async () => {
    const root = tempDir('gatehouse-content-verify-');
    const storage = createLocalStorage(root);
    const write = (rel: string, data: Buffer | string) => { fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true }); fs.writeFileSync(path.join(root, rel), data); };
    const good = Buffer.from('abc');
    const marks = (files: string[]) => files.map((f) => line([0, 'm', CONTENT_MARK + JSON.stringify({ ...marker, file: f, size: 3, sha256: sha(good) })])).join('\n') + '\n';
    write('t.cast', marks(['t.files/1', 't.files/2', 't.files/3', 'victim.cast']));
    write('t.files/1', good);
    write('t.files/2', 'abd');
    write('victim.cast', 'another recording');
    const rec = (p: string, kind: RecordingRecord['kind']) => ({ sessionId: 's', channel: 0, path: p, kind, state: 'closed' } as RecordingRecord);
    const checks = await contentChecks(storage, [rec('t.cast', 'transfer')], () => true);
    expect(checks.map((c) => [c.file, c.verdict])).toEqual([['t.files/1', 'intact'], ['t.files/2', 'modified'], ['t.files/3', 'missing']]);
    expect(await contentChecks(storage, [rec('t.cast', 'terminal')], () => true)).toEqual([]);
    expect(await contentChecks(storage, [rec('t.cast', 'transfer')], () => false)).toEqual([]);
    // Retention removes the marked content files with their recording.
    // A terminal recording's text is the operator's: retention reads no markers from it.
    expect(await removeContents(storage, { path: 't.cast', kind: 'terminal' })).toBe(0);
    expect(await removeContents(storage, { path: 't.cast', kind: 'transfer' })).toBe(2);
    expect(fs.existsSync(path.join(root, 't.files/1')) || fs.existsSync(path.join(root, 't.files/2'))).toBe(false);
    // A marker naming another recording removed nothing.
    expect(fs.existsSync(path.join(root, 'victim.cast'))).toBe(true);
  });
});

describe('content files and retention', () => {
  it('the sweep removes a transfer recording\'s content files with it; verify then reports it deleted, nothing missing', async () => {
    const { store, clock } = tempStore();
    const root = tempDir('gatehouse-content-retention-');
    const sign = (h: string) => Buffer.from(h, 'hex').toString('base64');
    const verifySig = (data: Buffer, sig: Buffer) => data.equals(sig);
    await store.sessions.open({ id: 'up-1', user: 'alice', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'jump', node: 'n1' });
    await store.sessions.openChannel({ sessionId: 'up-1', channel: 0, kind: 'subsystem', command: 'sftp', pty: false, host: 'h', login: 'l' });
    const content = Buffer.from('the uploaded file\n');
    const rel = '2026/11/24/up-1-0.cast';
    const file = '2026/11/24/up-1-0.files/1';
    fs.mkdirSync(path.join(root, '2026/11/24/up-1-0.files'), { recursive: true });
    fs.writeFileSync(path.join(root, file), content);
    const cast = Buffer.from(`{"version":2}\n${JSON.stringify([0.5, 'm', CONTENT_MARK + JSON.stringify({ file, direction: 'upload', path: '/srv/x', size: content.length, sha256: sha(content) })])}\n`);
    fs.writeFileSync(path.join(root, rel), cast);
    await store.recordings.open({ sessionId: 'up-1', channel: 0, path: rel, kind: 'transfer' });
    await store.recordings.close({ sessionId: 'up-1', channel: 0, state: 'closed', truncated: false, size: cast.length, sha256: sha(cast) }, sign);
    await store.sessions.close('up-1', 'client_closed', 0, 0);
    const before = await verifyRecordings(store, root, verifySig, 'up-1', { retention: 5 * 86_400_000 });
    expect(before.items.map((i) => [i.file, i.verdict])).toEqual([[rel, 'intact'], [file, 'intact']]);

    clock.advance(10 * 86_400_000);
    expect(await sweepRetention({ store, root, clock, log: silentLogger(), retention: 5 * 86_400_000 })).toEqual({ deleted: 1, leftovers: 0 });
    expect(fs.existsSync(path.join(root, file))).toBe(false);
    expect(fs.existsSync(path.join(root, rel))).toBe(false);
    const after = await verifyRecordings(store, root, verifySig, 'up-1', { retention: 5 * 86_400_000 });
    expect(after.items.map((i) => [i.file, i.verdict])).toEqual([[rel, 'deleted']]);
    store.close();
  });
});
