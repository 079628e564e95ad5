import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { GatehouseError } from '../shared/errors.js';

/**
 * The encrypted container of a backup. A backup holds the host key, the client key and master.key,
 * so it is never written in clear:
 *
 *   "GHBACKUP" u32 headerLength header(JSON)     header: KDF (scrypt) parameters and salt, nonce prefix,
 *                                                   a check value of the key (tells a wrong passphrase
 *                                                   from a damaged archive)
 *   chunk*   u32 plainLength  ciphertext  tag(16) AES-256-GCM, one chunk per CHUNK bytes of content
 *
 * Each chunk is sealed on its own (STREAM construction): nonce = prefix(7) ‖ counter(4) ‖ last(1),
 * associated data = SHA-256(header) ‖ plainLength. So a big archive streams in bounded memory, a
 * flipped byte anywhere (header, length, ciphertext, tag) fails authentication, chunks cannot be
 * reordered or dropped (counter), and a cut archive is noticed (the last chunk says it is last).
 */
export const MAGIC = Buffer.from('GHBACKUP', 'ascii');
export const CHUNK = 1 << 20;
const TAG = 16;
const MAX_HEADER = 4096;

/** scrypt cost: 2^17 × r 8 = 128 MiB and about half a second per derivation (OWASP's minimum is 2^17). */
export const DEFAULT_KDF = { N: 1 << 17, r: 8, p: 1 } as const;
/** Refuse to derive with more than this from an archive's header (a header is read before it is authenticated). */
const MAX_KDF_N = 1 << 20;
/** The most memory a header may ask scrypt for (DEFAULT_KDF takes 128 MiB). */
const MAX_KDF_MEMORY = 256 * 1024 * 1024;

export interface KdfParams { N: number; r: number; p: number }

interface Header {
  format: 'gatehouse-backup';
  version: 1;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  chunk: number;
  noncePrefix: string;
  keyCheck: string;
}

export class ArchiveError extends GatehouseError {
  constructor(message: string, hint?: string) {
    super('GH_INVALID', message, hint === undefined ? {} : { hint });
  }
}

function deriveKeys(passphrase: Buffer, salt: Buffer, kdf: KdfParams): Promise<{ key: Buffer; check: string }> {
  return new Promise((resolve, reject) => {
    const maxmem = 128 * kdf.N * kdf.r * kdf.p + (32 << 20);
    scrypt(passphrase, salt, 64, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem }, (err, out) => {
      if (err) return reject(err);
      // Two independent halves: the cipher key, and a value whose hash lets us say "wrong passphrase".
      resolve({ key: out.subarray(0, 32), check: createHash('sha256').update(out.subarray(32)).digest('hex') });
    });
  });
}

function nonce(prefix: Buffer, counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0, 0, 7);
  n.writeUInt32BE(counter, 7);
  n[11] = last ? 1 : 0;
  return n;
}

function aad(headerHash: Buffer, length: number): Buffer {
  const b = Buffer.alloc(36);
  headerHash.copy(b, 0);
  b.writeUInt32BE(length, 32);
  return b;
}

/** Writes content to an archive file in sealed chunks; nothing in clear reaches the file. */
export class ArchiveWriter {
  private buffered: Buffer[] = [];
  private size = 0;
  private counter = 0;
  private closed = false;

  private constructor(private readonly fd: number, private readonly key: Buffer, private readonly prefix: Buffer, private readonly headerHash: Buffer) {}

  static async create(fd: number, passphrase: Buffer, kdf: KdfParams = DEFAULT_KDF): Promise<ArchiveWriter> {
    const salt = randomBytes(16);
    const prefix = randomBytes(7);
    const { key, check } = await deriveKeys(passphrase, salt, kdf);
    const header: Header = {
      format: 'gatehouse-backup', version: 1, kdf: { name: 'scrypt', ...kdf, salt: salt.toString('base64') }, cipher: 'aes-256-gcm',
      chunk: CHUNK, noncePrefix: prefix.toString('base64'), keyCheck: check,
    };
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(json.length);
    fs.writeSync(fd, Buffer.concat([MAGIC, len, json]));
    return new ArchiveWriter(fd, key, prefix, createHash('sha256').update(json).digest());
  }

  write(data: Buffer): void {
    if (this.closed) throw new Error('archive already closed');
    let rest = data;
    while (rest.length > 0) {
      const take = Math.min(rest.length, CHUNK - this.size);
      this.buffered.push(rest.subarray(0, take));
      this.size += take;
      rest = rest.subarray(take);
      if (this.size === CHUNK) this.seal(false);
    }
  }

  /** Seal what is buffered as the last chunk (possibly empty). */
  finish(): void {
    this.seal(true);
    this.closed = true;
  }

  private seal(last: boolean): void {
    const plain = Buffer.concat(this.buffered, this.size);
    this.buffered = [];
    this.size = 0;
    const c = createCipheriv('aes-256-gcm', this.key, nonce(this.prefix, this.counter++, last));
    c.setAAD(aad(this.headerHash, plain.length));
    const body = Buffer.concat([c.update(plain), c.final()]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(plain.length);
    fs.writeSync(this.fd, Buffer.concat([len, body, c.getAuthTag()]));
  }
}

function readExactly(fd: number, n: number, pos: number): Buffer {
  const b = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const r = fs.readSync(fd, b, got, n - got, pos + got);
    if (r === 0) break;
    got += r;
  }
  return got === n ? b : b.subarray(0, got);
}

const damaged = (what: string) => new ArchiveError(`the backup archive is damaged or was modified: ${what}`, 'nothing was restored; use another copy of the backup');

/**
 * Reads an archive: checks the passphrase against the header, then yields each chunk's content
 * only after its tag verified. Throws ArchiveError with a message a person can act on.
 */
export async function* readArchive(fd: number, passphrase: Buffer): AsyncGenerator<Buffer> {
  const start = readExactly(fd, MAGIC.length + 4, 0);
  if (start.length < MAGIC.length + 4 || !start.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ArchiveError('this is not a gatehouse backup archive (it does not start with GHBACKUP)', 'give the file written by gatehouse backup --out');
  }
  const hlen = start.readUInt32BE(MAGIC.length);
  if (hlen === 0 || hlen > MAX_HEADER) throw damaged('the header length is impossible');
  const json = readExactly(fd, hlen, start.length);
  if (json.length < hlen) throw damaged('the file ends inside its header');
  let header: Header;
  try {
    header = JSON.parse(json.toString('utf8')) as Header;
  } catch {
    throw damaged('the header is not readable');
  }
  const kdf = header?.kdf;
  if (header?.format !== 'gatehouse-backup' || header.version !== 1 || header.cipher !== 'aes-256-gcm' || kdf?.name !== 'scrypt'
    || header.chunk !== CHUNK || typeof kdf.salt !== 'string' || typeof header.noncePrefix !== 'string' || typeof header.keyCheck !== 'string'
    || !Number.isSafeInteger(kdf.N) || kdf.N < 2 || kdf.N > MAX_KDF_N || (kdf.N & (kdf.N - 1)) !== 0
    || !Number.isSafeInteger(kdf.r) || kdf.r < 1 || kdf.r > 32 || !Number.isSafeInteger(kdf.p) || kdf.p < 1 || kdf.p > 16
    // The header is read before anything is authenticated: its scrypt memory (128·N·r) stays bounded.
    || 128 * kdf.N * kdf.r > MAX_KDF_MEMORY) {
    throw damaged('the header names a format or parameters this gatehouse does not read');
  }
  const { key, check } = await deriveKeys(passphrase, Buffer.from(kdf.salt, 'base64'), kdf);
  const expect = Buffer.from(header.keyCheck, 'hex');
  if (expect.length !== 32 || !timingSafeEqual(expect, Buffer.from(check, 'hex'))) {
    throw new ArchiveError('wrong passphrase for this backup archive (or its header is damaged)', 'give the passphrase used with gatehouse backup; nothing was restored');
  }
  const headerHash = createHash('sha256').update(json).digest();
  const prefix = Buffer.from(header.noncePrefix, 'base64');
  let pos = start.length + hlen;
  for (let counter = 0; ; counter++) {
    const lenBuf = readExactly(fd, 4, pos);
    if (lenBuf.length < 4) throw damaged(`the archive is cut short after chunk ${counter} (byte ${pos})`);
    const len = lenBuf.readUInt32BE(0);
    if (len > CHUNK) throw damaged(`chunk ${counter} at byte ${pos} has an impossible length`);
    const body = readExactly(fd, len + TAG, pos + 4);
    if (body.length < len + TAG) throw damaged(`the archive is cut short inside chunk ${counter} (byte ${pos})`);
    const after = readExactly(fd, 1, pos + 4 + len + TAG);
    const last = after.length === 0;
    const d = createDecipheriv('aes-256-gcm', key, nonce(prefix, counter, last));
    d.setAAD(aad(headerHash, len));
    d.setAuthTag(body.subarray(len));
    let plain: Buffer;
    try {
      plain = Buffer.concat([d.update(body.subarray(0, len)), d.final()]);
    } catch {
      throw damaged(last
        ? `chunk ${counter} at byte ${pos} failed authentication (or the archive was cut short)`
        : `chunk ${counter} at byte ${pos} failed authentication`);
    }
    yield plain;
    if (last) return;
    pos += 4 + len + TAG;
  }
}
