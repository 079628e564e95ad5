import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ContentHash } from '../../../src/proxy/sftp/content.js';
import { ScpParser, scpCommand, type ScpFile } from '../../../src/proxy/sftp/scp.js';
import { MAX_PENDING, SftpTracker, type SftpEvent } from '../../../src/proxy/sftp/tracker.js';
import { Framer, MAX_PACKET, SSH_FX, SSH_FXF, SSH_FXP, WireError } from '../../../src/proxy/sftp/wire.js';

/** SFTP v3 packets, built the way OpenSSH's client and server write them. */
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const str = (s: string | Buffer) => { const b = Buffer.isBuffer(s) ? s : Buffer.from(s); return Buffer.concat([u32(b.length), b]); };
const pkt = (type: number, ...parts: Buffer[]) => { const body = Buffer.concat([Buffer.from([type]), ...parts]); return Buffer.concat([u32(body.length), body]); };
const noAttrs = u32(0);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A tracker with both sides fed through framers, as the observer does. */
function session(readOnly = false) {
  const events: SftpEvent[] = [];
  const t = new SftpTracker((e) => events.push(e), readOnly);
  const c = new Framer();
  const s = new Framer();
  const replies: Buffer[] = [];
  return {
    events, replies,
    client: (b: Buffer) => { for (const p of c.push(b)) { const v = t.client(p); if (!v.forward) replies.push(v.reply); } },
    server: (b: Buffer) => { for (const p of s.push(b)) t.server(p); },
    end: () => t.end(),
  };
}
const H = Buffer.from([0, 0, 0, 7]);
const closes = (ev: SftpEvent[]) => ev.filter((e): e is Extract<SftpEvent, { type: 'close' }> => e.type === 'close');

describe('SFTP tracker: files and hashes', () => {
  it('an upload whose file something else changed (another handle, a setstat size by path, copy-data) is partial, never a wrong hash', () => {
    const W = SSH_FXF.WRITE | SSH_FXF.CREAT | SSH_FXF.TRUNC;
    const attrsSize = (n: number) => Buffer.concat([u32(1), u64(n)]); // SSH_FILEXFER_ATTR_SIZE
    const cases: [string, (x: ReturnType<typeof session>) => void][] = [
      ['written through another handle', (x) => {
        x.client(pkt(SSH_FXP.OPEN, u32(50), str('/srv/app.sh'), u32(SSH_FXF.WRITE), noAttrs));
        x.server(pkt(SSH_FXP.HANDLE, u32(50), str(Buffer.from([9, 9]))));
      }],
      ['truncated by path', (x) => {
        x.client(pkt(SSH_FXP.SETSTAT, u32(50), str('/srv/app.sh'), attrsSize(0)));
        x.server(pkt(SSH_FXP.STATUS, u32(50), u32(SSH_FX.OK), str(''), str('')));
      }],
      ['changed by copy-data@openssh.com', (x) => {
        x.client(pkt(SSH_FXP.EXTENDED, u32(50), str('copy-data@openssh.com'), str(H), u64(0), u64(0), str(H), u64(0)));
        x.server(pkt(SSH_FXP.STATUS, u32(50), u32(SSH_FX.OK), str(''), str('')));
      }],
    ];
    for (const [why, change] of cases) {
      const x = session();
      x.client(pkt(SSH_FXP.INIT, u32(3)));
      x.server(pkt(SSH_FXP.VERSION, u32(3)));
      x.client(pkt(SSH_FXP.OPEN, u32(1), str('/srv/app.sh'), u32(W), noAttrs));
      x.server(pkt(SSH_FXP.HANDLE, u32(1), str(H)));
      x.client(pkt(SSH_FXP.WRITE, u32(2), str(H), u64(0), str('echo benign\n')));
      x.server(pkt(SSH_FXP.STATUS, u32(2), u32(SSH_FX.OK), str(''), str('')));
      change(x);
      x.client(pkt(SSH_FXP.CLOSE, u32(3), str(H)));
      x.server(pkt(SSH_FXP.STATUS, u32(3), u32(SSH_FX.OK), str(''), str('')));
      expect(closes(x.events).find((c) => c.path === '/srv/app.sh' && c.bytesWritten > 0), why).toMatchObject({ sha256: 'partial', partialReason: why });
    }
  });

  it('a request id reused while pending ends the channel (its reply could hand a handle or a realpath to another path)', () => {
    const x = session();
    x.client(pkt(SSH_FXP.INIT, u32(3)));
    x.server(pkt(SSH_FXP.VERSION, u32(3)));
    x.client(pkt(SSH_FXP.OPEN, u32(7), str('/etc/x'), u32(SSH_FXF.WRITE | SSH_FXF.CREAT | SSH_FXF.TRUNC), noAttrs));
    expect(() => x.client(pkt(SSH_FXP.STAT, u32(7), str('/tmp')))).toThrow(WireError);
    const y = session();
    y.client(pkt(SSH_FXP.REALPATH, u32(5), str('/tmp/innocent')));
    expect(() => y.client(pkt(SSH_FXP.REALPATH, u32(5), str('/etc/secret')))).toThrow(/reused/);
  });

  it('out-of-order bytes held by all files of a channel together stay under one budget', () => {
    const x = session();
    x.client(pkt(SSH_FXP.INIT, u32(3)));
    x.server(pkt(SSH_FXP.VERSION, u32(3)));
    // 20 handles open at once, each sent 3 MiB ahead of offset 0 (under the 4 MiB per file): 60 MiB
    // held if nothing bounded them together.
    const chunk = Buffer.alloc(32 * 1024, 1);
    let id = 100;
    const hs = Array.from({ length: 20 }, (_v, f) => Buffer.from([0, 0, 1, f]));
    hs.forEach((h, f) => {
      x.client(pkt(SSH_FXP.OPEN, u32(id), str(`/tmp/f${f}`), u32(SSH_FXF.WRITE | SSH_FXF.CREAT | SSH_FXF.TRUNC), noAttrs));
      x.server(pkt(SSH_FXP.HANDLE, u32(id++), str(h)));
    });
    for (const h of hs) {
      for (let off = chunk.length; off <= 3 * 1024 * 1024; off += chunk.length) {
        x.client(pkt(SSH_FXP.WRITE, u32(id), str(h), u64(off), str(chunk)));
        x.server(pkt(SSH_FXP.STATUS, u32(id++), u32(SSH_FX.OK), str(''), str('')));
      }
    }
    for (const h of hs) {
      x.client(pkt(SSH_FXP.CLOSE, u32(id), str(h)));
      x.server(pkt(SSH_FXP.STATUS, u32(id++), u32(SSH_FX.OK), str(''), str('')));
    }
    // The first files are held (a gap at close), the rest refused once the channel's 32 MiB are used.
    const reasons = closes(x.events).map((c) => c.partialReason);
    expect(reasons).toHaveLength(20);
    expect(reasons.slice(0, 8)).toEqual(Array(8).fill('gap in the content'));
    expect(reasons.slice(12)).toEqual(Array(8).fill('too far out of order'));
    expect(closes(x.events).every((c) => c.sha256 === 'partial')).toBe(true);
  });

  it('an upload written out of order (pipelined) hashes the whole file', () => {
    const x = session();
    const data = randomBytes(100_000);
    x.client(pkt(SSH_FXP.INIT, u32(3)));
    x.server(pkt(SSH_FXP.VERSION, u32(3)));
    x.client(pkt(SSH_FXP.OPEN, u32(1), str('/tmp/up.bin'), u32(SSH_FXF.WRITE | SSH_FXF.CREAT | SSH_FXF.TRUNC), noAttrs));
    x.server(pkt(SSH_FXP.HANDLE, u32(1), str(H)));
    const pieces = [[32768, 65536], [0, 32768], [65536, 100_000]] as const;
    pieces.forEach(([a, b], i) => x.client(pkt(SSH_FXP.WRITE, u32(10 + i), str(H), u64(a), str(data.subarray(a, b)))));
    pieces.forEach((_p, i) => x.server(pkt(SSH_FXP.STATUS, u32(10 + i), u32(SSH_FX.OK), str(''), str(''))));
    x.client(pkt(SSH_FXP.CLOSE, u32(20), str(H)));
    x.server(pkt(SSH_FXP.STATUS, u32(20), u32(SSH_FX.OK), str(''), str('')));
    expect(closes(x.events)).toEqual([expect.objectContaining({ path: '/tmp/up.bin', direction: 'upload', size: 100_000, bytesWritten: 100_000, sha256: sha(data) })]);
  });

  it('a download with a short read and EOF beyond it hashes the file once the gap is read', () => {
    const x = session();
    const data = randomBytes(40_000);
    x.client(pkt(SSH_FXP.REALPATH, u32(1), str('.')));
    x.server(pkt(SSH_FXP.NAME, u32(1), u32(1), str('/home/u'), str('/home/u'), noAttrs));
    x.client(pkt(SSH_FXP.OPEN, u32(2), str('f.bin'), u32(SSH_FXF.READ), noAttrs));
    x.server(pkt(SSH_FXP.HANDLE, u32(2), str(H)));
    x.client(pkt(SSH_FXP.READ, u32(3), str(H), u64(0), u32(32768)));
    x.client(pkt(SSH_FXP.READ, u32(4), str(H), u64(32768), u32(32768)));
    x.client(pkt(SSH_FXP.READ, u32(5), str(H), u64(65536), u32(32768)));
    x.server(pkt(SSH_FXP.DATA, u32(3), str(data.subarray(0, 20_000)))); // short read
    x.server(pkt(SSH_FXP.DATA, u32(4), str(data.subarray(32768))));
    x.server(pkt(SSH_FXP.STATUS, u32(5), u32(SSH_FX.EOF), str(''), str('')));
    x.client(pkt(SSH_FXP.READ, u32(6), str(H), u64(20_000), u32(12768)));
    x.server(pkt(SSH_FXP.DATA, u32(6), str(data.subarray(20_000, 32768))));
    x.client(pkt(SSH_FXP.READ, u32(7), str(H), u64(40_000), u32(32768)));
    x.server(pkt(SSH_FXP.STATUS, u32(7), u32(SSH_FX.EOF), str(''), str('')));
    x.client(pkt(SSH_FXP.CLOSE, u32(8), str(H)));
    x.server(pkt(SSH_FXP.STATUS, u32(8), u32(SSH_FX.OK), str(''), str('')));
    expect(closes(x.events)).toEqual([expect.objectContaining({ path: '/home/u/f.bin', direction: 'download', size: 40_000, sha256: sha(data) })]);
  });

  it('a seek-and-write (resume) upload is partial, never a wrong hash', () => {
    const x = session();
    x.client(pkt(SSH_FXP.OPEN, u32(1), str('/tmp/r'), u32(SSH_FXF.WRITE | SSH_FXF.CREAT), noAttrs));
    x.server(pkt(SSH_FXP.HANDLE, u32(1), str(H)));
    x.client(pkt(SSH_FXP.WRITE, u32(2), str(H), u64(1000), str(randomBytes(500))));
    x.server(pkt(SSH_FXP.STATUS, u32(2), u32(SSH_FX.OK), str(''), str('')));
    x.client(pkt(SSH_FXP.CLOSE, u32(3), str(H)));
    x.server(pkt(SSH_FXP.STATUS, u32(3), u32(SSH_FX.OK), str(''), str('')));
    expect(closes(x.events)[0]).toMatchObject({ sha256: 'partial', bytesWritten: 500 });
  });

  it('overlapping writes, a failed write and a download not read to EOF are partial', () => {
    const h = new ContentHash();
    h.add(0, Buffer.from('abcd'));
    h.add(2, Buffer.from('XY'));
    expect(h.finish()).toBeNull();
    const x = session();
    x.client(pkt(SSH_FXP.OPEN, u32(1), str('/tmp/w'), u32(SSH_FXF.WRITE | SSH_FXF.TRUNC), noAttrs));
    x.server(pkt(SSH_FXP.HANDLE, u32(1), str(H)));
    x.client(pkt(SSH_FXP.WRITE, u32(2), str(H), u64(0), str('hello')));
    x.server(pkt(SSH_FXP.STATUS, u32(2), u32(SSH_FX.FAILURE), str('disk full'), str('')));
    x.client(pkt(SSH_FXP.CLOSE, u32(3), str(H)));
    x.server(pkt(SSH_FXP.STATUS, u32(3), u32(SSH_FX.OK), str(''), str('')));
    const H2 = Buffer.from([9]);
    x.client(pkt(SSH_FXP.OPEN, u32(4), str('/tmp/r'), u32(SSH_FXF.READ), noAttrs));
    x.server(pkt(SSH_FXP.HANDLE, u32(4), str(H2)));
    x.client(pkt(SSH_FXP.READ, u32(5), str(H2), u64(0), u32(10)));
    x.server(pkt(SSH_FXP.DATA, u32(5), str('0123456789')));
    x.end();
    expect(closes(x.events).map((c) => c.sha256)).toEqual(['partial', 'partial']);
    expect(closes(x.events)[1]).toMatchObject({ unclosed: true, bytesRead: 10 });
  });

  it('rename, remove, mkdir, rmdir, setstat and symlink are reported with their result', () => {
    const x = session();
    x.client(pkt(SSH_FXP.RENAME, u32(1), str('/a'), str('/b')));
    x.client(pkt(SSH_FXP.REMOVE, u32(2), str('/c')));
    x.client(pkt(SSH_FXP.MKDIR, u32(3), str('/d'), noAttrs));
    x.client(pkt(SSH_FXP.RMDIR, u32(4), str('/e')));
    x.client(pkt(SSH_FXP.SETSTAT, u32(5), str('/f'), noAttrs));
    x.client(pkt(SSH_FXP.SYMLINK, u32(6), str('/target'), str('/link')));
    for (let i = 1; i <= 6; i++) x.server(pkt(SSH_FXP.STATUS, u32(i), u32(i === 2 ? SSH_FX.NO_SUCH_FILE : SSH_FX.OK), str(''), str('')));
    expect(x.events).toEqual([
      { type: 'rename', path: '/a', to: '/b', ok: true },
      { type: 'remove', path: '/c', ok: false, error: 'no such file' },
      { type: 'mkdir', path: '/d', ok: true },
      { type: 'rmdir', path: '/e', ok: true },
      { type: 'setstat', path: '/f', ok: true },
      { type: 'symlink', path: '/link', target: '/target', ok: true },
    ]);
  });
});

describe('SFTP tracker: read-only (sftp-read)', () => {
  it('answers every write itself with PERMISSION_DENIED and lets reads through', () => {
    const x = session(true);
    const writes = [
      pkt(SSH_FXP.OPEN, u32(1), str('/x'), u32(SSH_FXF.WRITE | SSH_FXF.CREAT | SSH_FXF.TRUNC), noAttrs),
      pkt(SSH_FXP.OPEN, u32(2), str('/x'), u32(SSH_FXF.READ | SSH_FXF.APPEND), noAttrs),
      pkt(SSH_FXP.REMOVE, u32(3), str('/x')),
      pkt(SSH_FXP.RENAME, u32(4), str('/x'), str('/y')),
      pkt(SSH_FXP.MKDIR, u32(5), str('/d'), noAttrs),
      pkt(SSH_FXP.RMDIR, u32(6), str('/d')),
      pkt(SSH_FXP.SETSTAT, u32(7), str('/x'), noAttrs),
      pkt(SSH_FXP.FSETSTAT, u32(8), str(H), noAttrs),
      pkt(SSH_FXP.SYMLINK, u32(9), str('/x'), str('/l')),
      pkt(SSH_FXP.WRITE, u32(10), str(H), u64(0), str('x')),
      pkt(SSH_FXP.EXTENDED, u32(11), str('posix-rename@openssh.com'), str('/x'), str('/y')),
      pkt(SSH_FXP.EXTENDED, u32(12), str('hardlink@openssh.com'), str('/x'), str('/y')),
      pkt(SSH_FXP.EXTENDED, u32(13), str('copy-data'), str(H), u64(0), u64(0), str(H), u64(0)),
      pkt(99, u32(14)),
    ];
    for (const w of writes) x.client(w);
    expect(x.replies).toHaveLength(writes.length);
    x.replies.forEach((r, i) => {
      expect(r[4]).toBe(SSH_FXP.STATUS);
      expect(r.readUInt32BE(5)).toBe(i + 1);
      expect(r.readUInt32BE(9)).toBe(SSH_FX.PERMISSION_DENIED);
    });
    expect(x.events.filter((e) => e.type === 'denied')).toHaveLength(writes.length);
    const before = x.replies.length;
    x.client(pkt(SSH_FXP.OPEN, u32(20), str('/x'), u32(SSH_FXF.READ), noAttrs));
    x.client(pkt(SSH_FXP.OPENDIR, u32(21), str('/')));
    x.client(pkt(SSH_FXP.EXTENDED, u32(22), str('statvfs@openssh.com'), str('/')));
    expect(x.replies).toHaveLength(before);
  });
});

describe('SFTP parser: hostile input never crashes or grows without bound', () => {
  it('a length over the limit, or zero, is a WireError', () => {
    expect(() => new Framer().push(u32(MAX_PACKET + 1))).toThrow(WireError);
    expect(() => new Framer().push(Buffer.concat([u32(0), Buffer.alloc(8)]))).toThrow(WireError);
    // A failed framer stays failed and holds nothing.
    const f = new Framer();
    expect(() => f.push(u32(0xffffffff))).toThrow(WireError);
    expect(f.push(pkt(SSH_FXP.INIT, u32(3)))).toEqual([]);
  });

  it('a path of 64 KiB is refused, as is a string that runs past its packet', () => {
    const x = session();
    expect(() => x.client(pkt(SSH_FXP.OPEN, u32(1), str('/'.repeat(64 * 1024)), u32(1), noAttrs))).toThrow(WireError);
    const y = session();
    expect(() => y.client(pkt(SSH_FXP.REMOVE, u32(1), u32(1000), Buffer.from('abc')))).toThrow(WireError);
  });

  it('truncated packets wait for their rest, byte by byte', () => {
    const x = session();
    const whole = Buffer.concat([
      pkt(SSH_FXP.OPEN, u32(1), str('/t'), u32(SSH_FXF.READ), noAttrs),
    ]);
    for (const b of whole) x.client(Buffer.from([b]));
    x.server(pkt(SSH_FXP.HANDLE, u32(1), str(H)));
    expect(x.events).toEqual([{ type: 'open', path: '/t', flags: ['read'] }]);
  });

  it('every truncation of a valid request is a WireError or nothing, never another error', () => {
    const packets = [
      pkt(SSH_FXP.OPEN, u32(1), str('/t'), u32(3), u32(0x8000000f), u64(1), u32(1), u32(2), u32(3), u32(4), u32(5), u32(1), str('a'), str('b')),
      pkt(SSH_FXP.WRITE, u32(2), str(H), u64(0), str('data')),
      pkt(SSH_FXP.RENAME, u32(3), str('/a'), str('/b')),
      pkt(SSH_FXP.EXTENDED, u32(4), str('posix-rename@openssh.com'), str('/a'), str('/b')),
    ];
    for (const p of packets) {
      for (let cut = 5; cut < p.length; cut++) {
        const body = p.subarray(4, cut);
        const t = new SftpTracker(() => undefined);
        try { t.client(body); } catch (err) { expect(err).toBeInstanceOf(WireError); }
      }
    }
  });

  it('random packets from either side (bounded count): only WireErrors', () => {
    let seed = 42;
    const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    for (let i = 0; i < 3000; i++) {
      const t = new SftpTracker(() => undefined, i % 2 === 0);
      const len = rnd() % 64;
      const body = Buffer.alloc(len + 1);
      for (let j = 0; j < body.length; j++) body[j] = rnd() & 0xff;
      // Types that exist get picked often, so the field parsers are reached.
      if (i % 3 !== 0) body[0] = [3, 4, 5, 6, 9, 10, 13, 14, 16, 18, 20, 200, 101, 102, 103, 104][rnd() % 16]!;
      for (const side of ['client', 'server'] as const) {
        try { t[side](body); } catch (err) { expect(err).toBeInstanceOf(WireError); }
      }
    }
  });

  it('pending requests are bounded', () => {
    const t = new SftpTracker(() => undefined);
    const stat = (id: number) => pkt(SSH_FXP.STAT, u32(id), str('/')).subarray(4);
    for (let i = 0; i < MAX_PENDING; i++) t.client(stat(i));
    expect(() => t.client(stat(MAX_PENDING))).toThrow(/outstanding/);
  });

  it('out-of-order pieces are held only within a bound, then the hash is partial', () => {
    const h = new ContentHash(1000);
    h.add(5000, Buffer.alloc(600));
    h.add(7000, Buffer.alloc(600)); // over the bound: given up
    h.add(0, Buffer.alloc(5000));
    expect(h.finish()).toBeNull();
    expect(h.partialReason).toMatch(/out of order/);
  });
});

describe('legacy scp records', () => {
  it('follows C, D, E and T records and hashes each file', () => {
    const files: ScpFile[] = [];
    const p = new ScpParser(scpCommand('scp -r -t /srv/in')!, (f) => files.push(f));
    const a = randomBytes(3000);
    const stream = Buffer.concat([
      Buffer.from('T1700000000 0 1700000000 0\nD0755 0 tree\n'), Buffer.from(`C0644 ${a.length} a.bin\n`), a, Buffer.from([0]),
      Buffer.from('D0700 0 sub\nC0600 0 empty\n'), Buffer.from([0]), Buffer.from('E\nE\n'),
    ]);
    for (let i = 0; i < stream.length; i += 7) p.push(stream.subarray(i, i + 7));
    p.end();
    expect(files).toEqual([
      { direction: 'upload', path: '/srv/in/tree/a.bin', name: 'a.bin', mode: '0644', size: 3000, bytes: 3000, sha256: sha(a) },
      { direction: 'upload', path: '/srv/in/tree/sub/empty', name: 'empty', mode: '0600', size: 0, bytes: 0, sha256: sha(Buffer.alloc(0)) },
    ]);
  });

  it('a download names the file; a stream cut inside a file is partial; a huge record line is refused', () => {
    const files: ScpFile[] = [];
    const p = new ScpParser(scpCommand('scp -f /etc/hosts')!, (f) => files.push(f));
    p.push(Buffer.from('C0644 10 hosts\n12345'));
    p.end();
    expect(files).toEqual([{ direction: 'download', path: '/etc/hosts', name: 'hosts', mode: '0644', size: 10, bytes: 5, sha256: 'partial' }]);
    const q = new ScpParser(scpCommand('scp -t /tmp')!, () => undefined);
    expect(() => q.push(Buffer.alloc(64 * 1024, 0x41))).toThrow(WireError);
    expect(() => new ScpParser(scpCommand('scp -t /tmp')!, () => undefined).push(Buffer.from('C0644 -1 x\n'))).toThrow(WireError);
  });
});

describe('SFTP tracker: an upload opened without TRUNC', () => {
  const upload = (sizeSet: number | null, writeEnd: number) => {
    const x = session();
    const data = randomBytes(writeEnd);
    x.client(pkt(SSH_FXP.OPEN, u32(1), str('/tmp/s'), u32(SSH_FXF.WRITE | SSH_FXF.CREAT), noAttrs));
    x.server(pkt(SSH_FXP.HANDLE, u32(1), str(H)));
    x.client(pkt(SSH_FXP.WRITE, u32(2), str(H), u64(0), str(data)));
    x.server(pkt(SSH_FXP.STATUS, u32(2), u32(SSH_FX.OK), str(''), str('')));
    if (sizeSet !== null) {
      x.client(pkt(SSH_FXP.FSETSTAT, u32(3), str(H), u32(1), u64(sizeSet)));
      x.server(pkt(SSH_FXP.STATUS, u32(3), u32(SSH_FX.OK), str(''), str('')));
    }
    x.client(pkt(SSH_FXP.CLOSE, u32(4), str(H)));
    x.server(pkt(SSH_FXP.STATUS, u32(4), u32(SSH_FX.OK), str(''), str('')));
    return { sha256: closes(x.events)[0]!.sha256, want: sha(data) };
  };
  it('is hashed when its size is then set to exactly the written end (OpenSSH scp), else partial', () => {
    const exact = upload(5000, 5000);
    expect(exact.sha256).toBe(exact.want);
    expect(upload(null, 5000).sha256).toBe('partial');
    expect(upload(9000, 5000).sha256).toBe('partial');
    expect(upload(100, 5000).sha256).toBe('partial');
  });
});
