import { MAX_PATH, WireError } from './wire.js';

/**
 * rsync's file list, read from the sender's side of an `rsync --server` channel (protocol 30–32,
 * what rsync 3.x speaks over ssh): the operator's stream for an upload, the target's for a
 * download (`--sender`). Both sides first exchange their protocol versions; the server sends its
 * compat flags, both send the checksum (and with -z compression) names they support, the server
 * sends a checksum seed; then the sender's output is multiplexed (4-byte headers, data under tag
 * 7). Its data is the file list, and with incremental recursion (compat flag 1, rsync's default
 * for -r) the lists of the sub-directories follow later, between the files' deltas — so the deltas
 * are followed too, without being kept (file index, item flags, checksum header, literal and match
 * tokens, plain or -z framed, the file's checksum), up to the end-of-lists marker.
 *
 * Only what this module knows is read: options that change the list's format beyond it (-H, -A,
 * -X, -c, --atimes, --crtimes, --iconv, filter lists sent to the receiver, …) make the list
 * `unparsed` from the start, and anything unexpected in the stream stops the reader with
 * `unparsed` and the reason — never a guessed list. Each entry gives its name (relative to the
 * transfer's root, as rsync sends it), type and size; there is no content hash (rsync sends deltas).
 * Memory is bounded: at most one name, one record header and the parser's state are held, and
 * MAX_ENTRIES entries are reported.
 */
export interface RsyncEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
}

export interface RsyncResult {
  state: 'read' | 'unparsed';
  /** Why the list could not be read (state unparsed). */
  reason?: string;
  entries: number;
}

export const MAX_ENTRIES = 100_000;
/** Bytes of one direction held before the other side said how to read them (a hostile client talking first). */
const MAX_WAITING = 64 * 1024;
const CHUNK_SIZE = 32 * 1024;
const NDX_DONE = -1;
const NDX_FLIST_EOF = -2;
const NDX_FLIST_OFFSET = -101;

const XMIT = {
  TOP_DIR: 1 << 0, SAME_MODE: 1 << 1, EXTENDED_FLAGS: 1 << 2, SAME_UID: 1 << 3, SAME_GID: 1 << 4, SAME_NAME: 1 << 5,
  LONG_NAME: 1 << 6, SAME_TIME: 1 << 7, SAME_RDEV_MAJOR: 1 << 8, HLINKED: 1 << 9, USER_NAME_FOLLOWS: 1 << 10,
  GROUP_NAME_FOLLOWS: 1 << 11, IO_ERROR_ENDLIST: 1 << 12, MOD_NSEC: 1 << 13, SAME_ATIME: 1 << 14, CRTIME_EQ_MTIME: 1 << 17,
} as const;
const CF_INC_RECURSE = 1 << 0;
const CF_VARINT_FLIST_FLAGS = 1 << 7;
const ITEM_BASIS_TYPE_FOLLOWS = 1 << 11;
const ITEM_XNAME_FOLLOWS = 1 << 12;
const ITEM_TRANSFER = 1 << 15;
/** File checksum lengths by negotiated name (checksum.c csum_len_for_type). */
const SUM_LEN: Record<string, number> = { xxh128: 16, xxh3: 8, xxh64: 8, md5: 16, md4: 16, sha1: 20, sha256: 32, sha512: 64, none: 1 };

/** What the server's command line says about the stream's format. */
export interface RsyncCommand {
  direction: 'upload' | 'download';
  /** Path arguments after ".". */
  paths: string[];
  links: boolean; uid: boolean; gid: boolean; devices: boolean; compress: boolean; dryRun: boolean;
  /** Why this run's format is not read, or null. */
  unsupported: string | null;
}

// Short options that do not change what the sender's stream looks like beyond the fields read here.
const SHORT_OK = new Set('logDtprdzvqinxSWuIOJRLkKyEbP'.split(''));
const LONG_OK = new Set(['--sender', '--numeric-ids', '--partial', '--inplace', '--size-only', '--ignore-existing', '--existing',
  '--safe-links', '--one-file-system', '--delay-updates', '--no-inc-recursive', '--no-i-r', '--ignore-times', '--whole-file', '--sparse', '--omit-dir-times', '--omit-link-times']);

export function rsyncCommand(argv: string[]): RsyncCommand | null {
  if (argv[0] !== 'rsync' || argv[1] !== '--server') return null;
  const cmd: RsyncCommand = { direction: argv.includes('--sender') ? 'download' : 'upload', paths: [], links: false, uid: false, gid: false, devices: false, compress: false, dryRun: false, unsupported: null };
  const refuse = (why: string) => { cmd.unsupported ??= why; };
  let i = 2;
  for (; i < argv.length && argv[i] !== '.'; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) { if (!LONG_OK.has(a)) refuse(`option ${a}`); continue; }
    if (!a.startsWith('-')) { refuse(`argument ${a.slice(0, 32)}`); continue; }
    for (const c of a.slice(1)) {
      if (c === 'e') break; // the rest is the client's capability string (read from the compat flags instead)
      if (!SHORT_OK.has(c)) { refuse(`option -${c}`); continue; }
      if (c === 'l') cmd.links = true;
      else if (c === 'o') cmd.uid = true;
      else if (c === 'g') cmd.gid = true;
      else if (c === 'D') cmd.devices = true;
      else if (c === 'z') cmd.compress = true;
      else if (c === 'n') cmd.dryRun = true;
    }
  }
  cmd.paths = argv.slice(i + 1);
  return cmd;
}

/** A queue of bytes with bounded reads. */
class Bytes {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void { if (b.length) { this.chunks.push(b); this.length += b.length; } }
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
  /** Up to n bytes from the front, without copying. */
  view(n: number): Buffer {
    const c = this.chunks[0]!;
    const k = Math.min(c.length, n);
    if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
    this.length -= k;
    return c.subarray(0, k);
  }
  /** What stays queued is copied: the relay's chunks are not ours to keep. */
  detach(): void {
    this.chunks = this.chunks.map((c) => Buffer.from(c));
  }
  skip(n: number): number {
    let done = 0;
    while (done < n && this.chunks.length) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - done);
      if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
      done += k;
    }
    this.length -= done;
    return done;
  }
}

/** A parser step: yields how many bytes it needs next (0: it waits for the other direction). */
type Step<T = void> = Generator<number, T, void>;

function* take(q: Bytes, n: number): Step<Buffer> { while (q.length < n) yield n; return q.take(n); }
function* skip(q: Bytes, n: number): Step { while (n > 0) { if (q.length === 0) yield 1; n -= q.skip(n); } }
function* byte(q: Bytes): Step<number> { return (yield* take(q, 1))[0]!; }
function* int32(q: Bytes): Step<number> { return (yield* take(q, 4)).readInt32LE(0); }

const INT_BYTE_EXTRA = (b: number) => (b < 0x80 ? 0 : b < 0xc0 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : b < 0xf8 ? 4 : b < 0xfc ? 5 : 6);

function* varint(q: Bytes): Step<number> {
  const ch = yield* byte(q);
  const extra = INT_BYTE_EXTRA(ch);
  if (extra === 0) return ch;
  if (extra >= 5) throw new WireError('rsync varint overflow');
  const b = Buffer.alloc(5);
  (yield* take(q, extra)).copy(b);
  b[extra] = ch & ((1 << (8 - extra)) - 1);
  return b.readInt32LE(0);
}

function* varlong(q: Bytes, min: number): Step<number> {
  const head = yield* take(q, min);
  const extra = INT_BYTE_EXTRA(head[0]!);
  if (min + extra > 9) throw new WireError('rsync varlong overflow');
  const b = Buffer.alloc(9);
  head.copy(b, 0, 1, min);
  if (extra) (yield* take(q, extra)).copy(b, min - 1);
  b[min + extra - 1] = extra ? head[0]! & ((1 << (8 - extra)) - 1) : head[0]!;
  const v = b.readBigInt64LE(0);
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new WireError('rsync length out of range');
  return Number(v);
}

function* vstring(q: Bytes, max: number): Step<string> {
  let len = yield* byte(q);
  if (len & 0x80) len = (len & 0x7f) * 0x100 + (yield* byte(q));
  if (len > max) throw new WireError('rsync string too long');
  return (yield* take(q, len)).toString('latin1');
}

const S_IFMT = 0o170000;
const typeOf = (mode: number): RsyncEntry['type'] | null => {
  switch (mode & S_IFMT) {
    case 0o100000: return 'file';
    case 0o040000: return 'dir';
    case 0o120000: return 'symlink';
    case 0o020000: case 0o060000: case 0o010000: case 0o140000: return 'other';
    default: return null;
  }
};

/** One rsync channel: feed both directions; entries are reported as they are read. */
export class RsyncReader {
  private readonly up = new Bytes();
  private readonly down = new Bytes();
  private readonly upGen: Step;
  private readonly downGen: Step;
  private upNeed = 0;
  private downNeed = 0;
  private compat: number | null = null;
  private clientVersion: number | null = null;
  private serverVersion: number | null = null;
  private seeded = false;
  private lastName = Buffer.alloc(0);
  /** The sender's data, out of its multiplexed messages. */
  private readonly payload = new Bytes();
  private lastMode = 0;
  private serverSums: string[] | null = null;
  private clientSums: string[] | null = null;
  private entries = 0;
  private done = false;
  private failure: string | null = null;
  /** The file list was read to its end. */
  private complete = false;

  constructor(private readonly cmd: RsyncCommand, private readonly emit: (e: RsyncEntry) => void) {
    if (cmd.unsupported) this.fail(`${cmd.unsupported} changes the file list's format`);
    this.upGen = this.clientSide();
    this.downGen = this.serverSide();
  }

  /** Operator → target bytes. */
  client(d: Buffer): void { this.feed(true, d); }
  /** Target → operator bytes (stdout). */
  server(d: Buffer): void { this.feed(false, d); }

  /** The outcome so far (call at the channel's end). */
  result(): RsyncResult {
    if (this.failure) return { state: 'unparsed', reason: this.failure, entries: this.entries };
    if (!this.complete) return { state: 'unparsed', reason: 'the stream ended before the end of the file list', entries: this.entries };
    return { state: 'read', entries: this.entries };
  }

  private fail(why: string): void {
    if (this.done) return;
    this.done = true;
    this.failure = why;
    this.release();
  }

  /** Nothing more is read: let go of what was held. */
  private release(): void {
    this.up.skip(this.up.length);
    this.down.skip(this.down.length);
    this.payload.skip(this.payload.length);
  }

  private feed(fromClient: boolean, d: Buffer): void {
    if (this.done) return;
    (fromClient ? this.up : this.down).push(d);
    try {
      // Each side may wait for what the other said: run both until neither moves.
      for (let moved = true; moved && !this.done;) moved = this.run(true) || this.run(false);
    } catch (err) {
      this.fail(err instanceof WireError ? err.message : 'internal error');
    }
    // A side waiting for the other holds its bytes: within a bound.
    for (const [q, need] of [[this.up, this.upNeed], [this.down, this.downNeed]] as const) {
      if (need === 0 && q.length > MAX_WAITING) this.fail('one side sent too much before the other answered');
      q.detach();
    }
    this.payload.detach();
  }

  /** Advance one direction's parser as far as its bytes allow; true if it moved. */
  private run(fromClient: boolean): boolean {
    const gen = fromClient ? this.upGen : this.downGen;
    const q = fromClient ? this.up : this.down;
    let moved = false;
    for (;;) {
      if (this.done) return moved;
      const need = fromClient ? this.upNeed : this.downNeed;
      if (need === Infinity || (need > 0 && q.length < need)) return moved;
      const before = q.length;
      const r = gen.next();
      const next = r.done ? Infinity : r.value;
      if (fromClient) this.upNeed = next; else this.downNeed = next;
      // need 0: waiting on the other side; nothing consumed means no move.
      if (next === 0 && q.length === before) return moved;
      moved = true;
    }
  }

  private get negotiated(): boolean { return this.compat !== null && (this.compat & CF_VARINT_FLIST_FLAGS) !== 0; }

  private *version(q: Bytes, client: boolean): Step {
    const v = yield* int32(q);
    if (v < 20 || v > 40) throw new WireError(`rsync protocol ${v} is not rsync's`);
    if (client) this.clientVersion = v; else this.serverVersion = v;
    // Both sides use the lower of the two versions; only the formats of 31 and 32 are read.
    const other = client ? this.serverVersion : this.clientVersion;
    if (other !== null && (Math.min(v, other) < 31 || Math.min(v, other) > 32)) throw new WireError(`rsync protocol ${Math.min(v, other)} is not read (31 and 32 are)`);
  }

  private *clientSide(): Step {
    const q = this.up;
    yield* this.version(q, true);
    // The client's names come after the server's compat flags, which say whether there are any.
    while (this.compat === null) yield 0;
    if (this.negotiated) {
      this.clientSums = (yield* vstring(q, 1024)).split(' ');
      if (this.cmd.compress) yield* vstring(q, 1024);
    } else this.clientSums = [];
    if (this.cmd.direction !== 'upload') return;
    // The sender starts after the server's checksum seed (the names are known by then).
    while (!this.seeded) yield 0;
    yield* this.demux(q);
  }

  private *serverSide(): Step {
    const q = this.down;
    yield* this.version(q, false);
    while (this.clientVersion === null) yield 0;
    this.compat = yield* varint(q);
    if (this.negotiated) {
      this.serverSums = (yield* vstring(q, 1024)).split(' ');
      if (this.cmd.compress) yield* vstring(q, 1024);
    } else this.serverSums = [];
    // The seed comes after the server read the client's names: they are in the other queue by now.
    while (this.clientSums === null) yield 0;
    yield* take(q, 4); // checksum seed
    this.seeded = true;
    if (this.cmd.direction === 'download') yield* this.demux(q);
  }

  /** The negotiated file checksum's length: the first of the client's names the server has too. */
  private sumLength(): number {
    if (!this.negotiated) return 16; // md5 (protocol 30+ without negotiation)
    const name = this.clientSums!.find((n) => this.serverSums!.includes(n));
    const len = name === undefined ? undefined : SUM_LEN[name];
    if (len === undefined) throw new WireError(`rsync checksum ${String(name).slice(0, 16)} is not known`);
    return len;
  }

  /** The multiplexed sender stream: MSG_DATA payloads feed the file-list parser, other messages are skipped. */
  private *demux(q: Bytes): Step {
    const data = this.payload;
    const inner = this.senderData(data);
    let need = 1;
    for (;;) {
      const h = (yield* take(q, 4)).readUInt32LE(0);
      const tag = (h >>> 24) - 7;
      const len = h & 0xffffff;
      if (tag < 0) throw new WireError('rsync stream is not multiplexed as expected');
      if (tag !== 0) { yield* skip(q, len); continue; }
      let left = len;
      while (left > 0) {
        if (q.length === 0) yield 1;
        const piece = q.view(left);
        data.push(piece);
        left -= piece.length;
        while (data.length >= need) {
          const r = inner.next();
          if (r.done) { this.complete = true; this.done = true; this.release(); return; }
          need = r.value;
        }
      }
    }
  }

  private *senderData(q: Bytes): Step {
    const incRecurse = (this.compat! & CF_INC_RECURSE) !== 0;
    const sumLen = this.sumLength();
    yield* this.fileList(q);
    if (!incRecurse) return;
    const ndx = { positive: -1, negative: 1 };
    for (;;) {
      const n = yield* this.readNdx(q, ndx);
      if (n === NDX_DONE) continue;
      if (n === NDX_FLIST_EOF) return;
      if (n <= NDX_FLIST_OFFSET) { yield* this.fileList(q); continue; }
      if (n < 0) throw new WireError(`unexpected rsync index ${n}`);
      const iflags = (yield* take(q, 2)).readUInt16LE(0);
      if (iflags & ITEM_BASIS_TYPE_FOLLOWS) yield* byte(q);
      if (iflags & ITEM_XNAME_FOLLOWS) yield* vstring(q, MAX_PATH);
      if (!(iflags & ITEM_TRANSFER) || this.cmd.dryRun) continue;
      const head = yield* take(q, 16);
      const [count, blength, s2length, remainder] = [0, 4, 8, 12].map((o) => head.readInt32LE(o)) as [number, number, number, number];
      if (count < 0 || blength < 0 || s2length < 0 || s2length > 64 || remainder < 0 || remainder > blength) throw new WireError('malformed rsync checksum header');
      yield* (this.cmd.compress ? this.compressedTokens(q) : this.tokens(q));
      yield* skip(q, sumLen);
    }
  }

  private *tokens(q: Bytes): Step {
    for (;;) {
      const n = yield* int32(q);
      if (n === 0) return;
      if (n > CHUNK_SIZE) throw new WireError('rsync literal data longer than a chunk');
      if (n > 0) yield* skip(q, n);
    }
  }

  private *compressedTokens(q: Bytes): Step {
    for (;;) {
      const flag = yield* byte(q);
      if (flag === 0) return; // END_FLAG
      if ((flag & 0xc0) === 0x40) yield* skip(q, ((flag & 0x3f) << 8) + (yield* byte(q))); // DEFLATED_DATA
      else if (flag === 0x20) yield* skip(q, 4); // TOKEN_LONG
      else if (flag === 0x21) yield* skip(q, 6); // TOKENRUN_LONG
      else if ((flag & 0xc0) === 0xc0) yield* skip(q, 2); // TOKENRUN_REL
      else if ((flag & 0xc0) !== 0x80) throw new WireError(`unexpected rsync token flag ${flag}`); // not TOKEN_REL
    }
  }

  private *readNdx(q: Bytes, prev: { positive: number; negative: number }): Step<number> {
    let b = yield* byte(q);
    if (b === 0) return NDX_DONE;
    const negative = b === 0xff;
    if (negative) b = yield* byte(q);
    const last = negative ? prev.negative : prev.positive;
    let num: number;
    if (b === 0xfe) {
      const x = yield* take(q, 2);
      if (x[0]! & 0x80) {
        const y = yield* take(q, 2);
        num = Buffer.from([x[1]!, y[0]!, y[1]!, x[0]! & 0x7f]).readUInt32LE(0);
      } else num = (x[0]! << 8) + x[1]! + last;
    } else num = b + last;
    if (num > 0x7fffffff) throw new WireError('rsync index out of range');
    if (negative) { prev.negative = num; return -num; }
    prev.positive = num;
    return num;
  }

  /** One file list, to its end marker. */
  private *fileList(q: Bytes): Step {
    // Like rsync's own reader, the previous name and mode carry over from one list to the next.
    for (;;) {
      let flags: number;
      if (this.negotiated) {
        flags = yield* varint(q);
        if (flags === 0) { yield* varint(q); return; } // io_error
      } else {
        flags = yield* byte(q);
        if (flags === 0) return;
        if (flags & XMIT.EXTENDED_FLAGS) flags |= (yield* byte(q)) << 8;
        if (flags === (XMIT.EXTENDED_FLAGS | XMIT.IO_ERROR_ENDLIST)) { yield* varint(q); return; }
      }
      // Hard links are only sent with -H, which is not read; a sender setting the bit anyway is unexpected.
      if (flags & XMIT.HLINKED) throw new WireError('rsync hard-link entry');
      const l1 = flags & XMIT.SAME_NAME ? yield* byte(q) : 0;
      const l2 = flags & XMIT.LONG_NAME ? yield* varint(q) : yield* byte(q);
      if (l1 > this.lastName.length || l2 < 0 || l1 + l2 >= MAX_PATH) throw new WireError('rsync file name out of bounds');
      const name = Buffer.concat([this.lastName.subarray(0, l1), yield* take(q, l2)]);
      this.lastName = name;
      const size = yield* varlong(q, 3);
      if (!(flags & XMIT.SAME_TIME)) yield* varlong(q, 4);
      if (flags & XMIT.MOD_NSEC) yield* varint(q);
      if (!(flags & XMIT.SAME_MODE)) this.lastMode = (yield* take(q, 4)).readUInt32LE(0);
      const mode = this.lastMode;
      const type = typeOf(mode);
      if (type === null) throw new WireError('rsync file mode of no known type');
      if (this.cmd.uid && !(flags & XMIT.SAME_UID)) {
        yield* varint(q);
        if (flags & XMIT.USER_NAME_FOLLOWS) yield* skip(q, yield* byte(q));
      }
      if (this.cmd.gid && !(flags & XMIT.SAME_GID)) {
        yield* varint(q);
        if (flags & XMIT.GROUP_NAME_FOLLOWS) yield* skip(q, yield* byte(q));
      }
      const fmt = mode & S_IFMT;
      const device = fmt === 0o020000 || fmt === 0o060000;
      // Protocol 31+: devices carry major (unless the same as before) and minor; specials nothing.
      if (this.cmd.devices && device) {
        if (!(flags & XMIT.SAME_RDEV_MAJOR)) yield* varint(q);
        yield* varint(q);
      }
      if (this.cmd.links && type === 'symlink') {
        const len = yield* varint(q);
        if (len < 0 || len >= MAX_PATH) throw new WireError('rsync link target out of bounds');
        yield* skip(q, len);
      }
      if (++this.entries > MAX_ENTRIES) throw new WireError(`more than ${MAX_ENTRIES} rsync file-list entries`);
      this.emit({ name: name.toString('utf8'), type, size: type === 'file' ? size : 0 });
    }
  }
}
