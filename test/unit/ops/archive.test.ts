import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ArchiveWriter, CHUNK, MAGIC, readArchive } from '../../../src/ops/archive.js';
import { BundleWriter, readBundle, safePath } from '../../../src/ops/bundle.js';
import { tempDir } from '../../helpers/cli.js';

// A cheap KDF keeps the unit tests fast; the product's default is 2^17 (archive.ts DEFAULT_KDF).
const FAST = { N: 1 << 10, r: 8, p: 1 };
const PASS = Buffer.from('correct horse battery staple');

async function write(file: string, content: Buffer[], pass = PASS): Promise<void> {
  const fd = fs.openSync(file, 'wx', 0o600);
  const w = await ArchiveWriter.create(fd, pass, FAST);
  for (const c of content) w.write(c);
  w.finish();
  fs.closeSync(fd);
}

async function read(file: string, pass = PASS): Promise<Buffer> {
  const fd = fs.openSync(file, 'r');
  try {
    const parts: Buffer[] = [];
    for await (const p of readArchive(fd, pass)) parts.push(p);
    return Buffer.concat(parts);
  } finally {
    fs.closeSync(fd);
  }
}

describe('backup archive container', () => {
  const dir = tempDir();
  const big = randomBytes(2 * CHUNK + 12345);

  it('round-trips content larger than a chunk, and none of it is in clear in the file', async () => {
    const f = path.join(dir, 'a.ghb');
    const marker = Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----');
    await write(f, [marker, big]);
    expect((await read(f)).equals(Buffer.concat([marker, big]))).toBe(true);
    const raw = fs.readFileSync(f);
    expect(raw.subarray(0, MAGIC.length).equals(MAGIC)).toBe(true);
    expect(raw.includes(marker)).toBe(false);
    expect(raw.includes(big.subarray(1000, 1064))).toBe(false);
  });

  it('an empty archive is valid (one empty last chunk)', async () => {
    const f = path.join(dir, 'empty.ghb');
    await write(f, []);
    expect((await read(f)).length).toBe(0);
  });

  it('says "wrong passphrase" for a wrong passphrase', async () => {
    const f = path.join(dir, 'b.ghb');
    await write(f, [Buffer.from('hello')]);
    await expect(read(f, Buffer.from('not the passphrase'))).rejects.toThrow(/wrong passphrase/);
  });

  it('a flipped byte anywhere after the magic is refused (header, lengths, ciphertext, tags)', async () => {
    const f = path.join(dir, 'c.ghb');
    await write(f, [big]);
    const raw = fs.readFileSync(f);
    const hlen = raw.readUInt32BE(MAGIC.length);
    const bodyStart = MAGIC.length + 4 + hlen;
    // Every region: the header length, the header, each chunk's length, body and tag, the last bytes.
    const positions = [MAGIC.length + 2, MAGIC.length + 4 + 5, bodyStart + 1, bodyStart + 100, bodyStart + 4 + CHUNK + 3,
      bodyStart + 4 + CHUNK + 16 + 2, raw.length - 1, raw.length - 20, Math.floor(raw.length / 2)];
    for (const [i, pos] of positions.entries()) {
      const g = path.join(dir, `flip${i}.ghb`);
      const copy = Buffer.from(raw);
      copy[pos]! ^= 0x01;
      fs.writeFileSync(g, copy);
      await expect(read(g), `byte ${pos}`).rejects.toThrow(/damaged|wrong passphrase|not a gatehouse backup/);
    }
  });

  it('a cut archive, a dropped chunk, an appended chunk or swapped chunks are refused', async () => {
    const f = path.join(dir, 'd.ghb');
    await write(f, [big]);
    const raw = fs.readFileSync(f);
    const hlen = raw.readUInt32BE(MAGIC.length);
    const start = MAGIC.length + 4 + hlen;
    const chunkLen = 4 + CHUNK + 16;
    const c0 = raw.subarray(start, start + chunkLen);
    const c1 = raw.subarray(start + chunkLen, start + 2 * chunkLen);
    const rest = raw.subarray(start + 2 * chunkLen);
    const head = raw.subarray(0, start);
    const variants: Record<string, Buffer> = {
      'cut at a chunk boundary': Buffer.concat([head, c0, c1]),
      'cut mid-chunk': raw.subarray(0, raw.length - 7),
      'dropped chunk': Buffer.concat([head, c0, rest]),
      'swapped chunks': Buffer.concat([head, c1, c0, rest]),
      'appended chunk': Buffer.concat([raw, c0]),
    };
    for (const [name, bytes] of Object.entries(variants)) {
      const g = path.join(dir, `${name.replace(/ /g, '-')}.ghb`);
      fs.writeFileSync(g, bytes);
      await expect(read(g), name).rejects.toThrow(/damaged/);
    }
  });

  it('refuses a file that is not an archive, and a header asking for an absurd KDF cost', async () => {
    const f = path.join(dir, 'e.ghb');
    fs.writeFileSync(f, 'SQLite format 3\0 and so on');
    await expect(read(f)).rejects.toThrow(/not a gatehouse backup/);
    const g = path.join(dir, 'g.ghb');
    await write(g, [Buffer.from('x')]);
    const raw = fs.readFileSync(g);
    const hlen = raw.readUInt32BE(MAGIC.length);
    // N beyond the cap, and N and r each within their caps but together 4 GiB of scrypt memory.
    for (const kdf of [{ N: 1 << 30 }, { N: 1 << 20, r: 32 }]) {
      const header = JSON.parse(raw.subarray(MAGIC.length + 4, MAGIC.length + 4 + hlen).toString()) as { kdf: { N: number; r: number } };
      Object.assign(header.kdf, kdf);
      const json = Buffer.from(JSON.stringify(header));
      const len = Buffer.alloc(4);
      len.writeUInt32BE(json.length);
      fs.writeFileSync(g, Buffer.concat([MAGIC, len, json, raw.subarray(MAGIC.length + 4 + hlen)]));
      await expect(read(g), JSON.stringify(kdf)).rejects.toThrow(/parameters this gatehouse does not read/);
    }
  });
});

describe('backup content (bundle)', () => {
  async function* once(b: Buffer) { yield b; }
  const collect = async (b: Buffer) => {
    const out: string[] = [];
    for await (const ev of readBundle(once(b))) out.push(ev.kind === 'data' ? `data:${ev.data.length}` : ev.kind === 'manifest' ? 'manifest' : `${ev.kind}:${ev.path}`);
    return out;
  };
  const base = { format: 'gatehouse-backup-manifest' as const, version: 1 as const, createdAt: '', gatehouse: '0', host: 'h', recordings: true,
    database: { schema: 1, auditEvents: 0, auditHead: '', recordingsChained: 0, recordingsHead: '' } };

  it('safePath keeps restores inside the data directory layout', () => {
    for (const ok of ['gatehouse.db', 'master.key', 'recordings/2026/11/30/abc-0.cast', 'target_keys/3']) expect(safePath(ok)).toBe(ok);
    for (const bad of ['../x', '/etc/passwd', 'recordings/../../x', 'recordings//x', '.ssh/authorized_keys', 'recordings/a/.hidden',
      'recordings\\..\\x', 'gatehouse.db\0', '', 'recordings/./a']) expect(safePath(bad), bad).toBeNull();
  });

  it('reads back what was written and checks it against the manifest', async () => {
    const parts: Buffer[] = [];
    const w = new BundleWriter((b) => parts.push(Buffer.from(b)));
    w.addBuffer('gatehouse.db', Buffer.from('db bytes'));
    w.addBuffer('recordings/2026/a-0.cast', Buffer.alloc(5000, 1));
    w.finish(base);
    expect(await collect(Buffer.concat(parts))).toEqual(['file:gatehouse.db', 'data:8', 'end-file:gatehouse.db', 'file:recordings/2026/a-0.cast', 'data:5000', 'end-file:recordings/2026/a-0.cast', 'manifest']);
  });

  it('refuses content that disagrees with its manifest, escapes the directory, or repeats a file', async () => {
    const build = (f: (w: BundleWriter, sink: Buffer[]) => void) => {
      const parts: Buffer[] = [];
      const w = new BundleWriter((b) => parts.push(Buffer.from(b)));
      f(w, parts);
      return Buffer.concat(parts);
    };
    const tampered = build((w) => { w.addBuffer('gatehouse.db', Buffer.from('db')); w.files[0]!.sha256 = '0'.repeat(64); w.finish(base); });
    await expect(collect(tampered)).rejects.toThrow(/does not match its SHA-256/);
    const escape = build((_w, sink) => { sink.push(Buffer.from('{"type":"file","path":"../../etc/cron.d/x","size":1}\nx')); });
    await expect(collect(escape)).rejects.toThrow(/path a backup never holds/);
    const twice = build((w, sink) => { w.addBuffer('gatehouse.db', Buffer.from('a')); sink.push(Buffer.from('{"type":"file","path":"gatehouse.db","size":1}\nb')); });
    await expect(collect(twice)).rejects.toThrow(/appears twice/);
    const noManifest = build((w) => { w.addBuffer('gatehouse.db', Buffer.from('a')); });
    await expect(collect(noManifest)).rejects.toThrow(/manifest is missing/);
    const extra = build((w, sink) => { w.addBuffer('gatehouse.db', Buffer.from('a')); w.finish(base); sink.push(Buffer.from('junk')); });
    await expect(collect(extra)).rejects.toThrow(/after the manifest/);
  });
});
