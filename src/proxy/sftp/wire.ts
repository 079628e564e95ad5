/**
 * SFTP version 3 framing and fields (draft-ietf-secsh-filexfer-02, what OpenSSH speaks). Every
 * read is bounds-checked: a field that runs past its packet is a WireError, never a crash or an
 * out-of-range read. Packets are `uint32 length, byte type, …`.
 */

export const SSH_FXP = {
  INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, LSTAT: 7, FSTAT: 8, SETSTAT: 9, FSETSTAT: 10,
  OPENDIR: 11, READDIR: 12, REMOVE: 13, MKDIR: 14, RMDIR: 15, REALPATH: 16, STAT: 17, RENAME: 18, READLINK: 19,
  SYMLINK: 20, STATUS: 101, HANDLE: 102, DATA: 103, NAME: 104, ATTRS: 105, EXTENDED: 200, EXTENDED_REPLY: 201,
} as const;

export const SSH_FXF = { READ: 0x1, WRITE: 0x2, APPEND: 0x4, CREAT: 0x8, TRUNC: 0x10, EXCL: 0x20 } as const;
export const SSH_FX = { OK: 0, EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4 } as const;

/**
 * The largest packet accepted: OpenSSH's sftp-server refuses more than 256 KiB (SFTP_MAX_MSG_LENGTH),
 * plus room for the header. A longer length field is hostile or broken: the channel ends.
 */
export const MAX_PACKET = 256 * 1024 + 1024;
/** The longest path gatehouse accepts in a request or reply (PATH_MAX on Linux is 4096). */
export const MAX_PATH = 4096;

export class WireError extends Error {}

/** A cursor over one packet's payload (after the length field). */
export class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  get remaining(): number { return this.buf.length - this.pos; }

  byte(): number {
    if (this.remaining < 1) throw new WireError('packet too short');
    return this.buf[this.pos++]!;
  }

  u32(): number {
    if (this.remaining < 4) throw new WireError('packet too short');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    if (this.remaining < 8) throw new WireError('packet too short');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    // Offsets past 2^53 are not real files; keep them exact enough to be "not contiguous".
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }

  bytes(max = MAX_PACKET): Buffer {
    const n = this.u32();
    if (n > this.remaining) throw new WireError('string length runs past the packet');
    if (n > max) throw new WireError(`string of ${n} bytes is longer than ${max}`);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** A path: at most MAX_PATH bytes, decoded as UTF-8 (invalid bytes become U+FFFD, for display only). */
  path(): string {
    return this.bytes(MAX_PATH).toString('utf8');
  }

  /** ATTRS: which fields are present, and the size when given. */
  attrs(): { flags: number; size: number | null } {
    const flags = this.u32();
    let size: number | null = null;
    if (flags & 0x1) size = this.u64();
    if (flags & 0x2) { this.u32(); this.u32(); }
    if (flags & 0x4) this.u32();
    if (flags & 0x8) { this.u32(); this.u32(); }
    if (flags & 0x80000000) {
      const n = this.u32();
      if (n > 1024) throw new WireError('too many extended attributes');
      for (let i = 0; i < n; i++) { this.bytes(); this.bytes(); }
    }
    return { flags, size };
  }
}

/**
 * Splits a byte stream into whole packets, holding at most one packet's bytes. `push` returns the
 * complete packets (payload after the length field) in order; a length over MAX_PACKET or under 1
 * is a WireError, and the framer stays failed.
 */
export class Framer {
  private parts: Buffer[] = [];
  private held = 0;
  private need = -1;
  private failed = false;

  push(chunk: Buffer): Buffer[] {
    if (this.failed) return [];
    const out: Buffer[] = [];
    let data = chunk;
    while (data.length > 0) {
      if (this.need < 0) {
        // Still reading the 4-byte length.
        const take = Math.min(4 - this.held, data.length);
        this.parts.push(data.subarray(0, take));
        this.held += take;
        data = data.subarray(take);
        if (this.held < 4) break;
        const len = Buffer.concat(this.parts).readUInt32BE(0);
        this.parts = [];
        this.held = 0;
        if (len < 1 || len > MAX_PACKET) {
          this.failed = true;
          throw new WireError(`packet length ${len} is outside 1..${MAX_PACKET}`);
        }
        this.need = len;
        continue;
      }
      const take = Math.min(this.need - this.held, data.length);
      this.parts.push(data.subarray(0, take));
      this.held += take;
      data = data.subarray(take);
      if (this.held === this.need) {
        out.push(this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.held));
        this.parts = [];
        this.held = 0;
        this.need = -1;
      }
    }
    return out;
  }

  /** True between packets: a reply may be inserted into the stream here. */
  get atBoundary(): boolean {
    return this.need < 0 && this.held === 0;
  }
}

/** One whole packet (with its length) of type STATUS: what gatehouse answers a refused request with. */
export function statusPacket(id: number, code: number, message: string): Buffer {
  const msg = Buffer.from(message, 'utf8');
  const body = Buffer.alloc(1 + 4 + 4 + 4 + msg.length + 4);
  let o = 0;
  body[o++] = SSH_FXP.STATUS;
  o = body.writeUInt32BE(id, o);
  o = body.writeUInt32BE(code, o);
  o = body.writeUInt32BE(msg.length, o);
  o += msg.copy(body, o);
  body.writeUInt32BE(0, o); // language tag: empty
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length, 0);
  return Buffer.concat([len, body]);
}
