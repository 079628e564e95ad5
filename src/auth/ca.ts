import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import { GatehouseError } from '../shared/errors.js';

/**
 * The user certificate authority: the key that signs the short-lived certificates gatehouse
 * presents to targets (OpenSSH PROTOCOL.certkeys). It is a key of its own, never the host key or
 * the client key, kept in the data directory beside them (0600).
 *
 * Rotation is two files, so every step is one atomic file operation and a running server needs no
 * restart (it reads the signing key again for every certificate):
 *   user_ca_ed25519_key        the key that signs
 *   user_ca_ed25519_key.next   after `ca rotate`: trusted by targets from now on, not yet signing
 * `ca retire` renames .next over the signing key: from that moment the new key signs and the old
 * one is gone.
 */
export const CA_FILE = 'user_ca_ed25519_key';
const NEXT_SUFFIX = '.next';
const CA_COMMENT = 'gatehouse user CA';

export interface CaKeyInfo {
  /** "ssh-ed25519 BASE64 COMMENT": one line for the target's TrustedUserCAKeys file. */
  line: string;
  fingerprint: string;
}

export interface CaState {
  /** The key that signs now. */
  signing: CaKeyInfo;
  /** The key a rotation added (targets should trust it already), or null. */
  next: CaKeyInfo | null;
}

export function caPaths(dir: string): { current: string; next: string } {
  const current = path.join(dir, CA_FILE);
  return { current, next: current + NEXT_SUFFIX };
}

function caError(message: string, hint: string): GatehouseError {
  return new GatehouseError('GH_DATADIR', message, { hint });
}

/** Write a new CA key exactly once (a CLI and a server racing on first use make one key). */
function createKeyFile(file: string, comment: string): boolean {
  if (fs.existsSync(file)) return false;
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, pair.private, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    fs.unlinkSync(tmp);
  }
}

/** The CA key on first use of the data directory. */
export function ensureUserCa(dir: string): void {
  createKeyFile(caPaths(dir).current, CA_COMMENT);
}

function readPrivate(file: string): ssh2.ParsedKey {
  const st = fs.statSync(file);
  if ((st.mode & 0o077) !== 0) {
    throw caError(`CA key ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`, `restrict it with: chmod 600 ${file}`);
  }
  const parsed = ssh2.utils.parseKey(fs.readFileSync(file));
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error || key.type !== 'ssh-ed25519' || !key.isPrivateKey()) {
    throw caError(`CA key ${file} is not an ed25519 private key`, 'restore it from a backup');
  }
  return key;
}

function info(key: ssh2.ParsedKey, comment: string): CaKeyInfo {
  const blob = key.getPublicSSH();
  return {
    line: `${key.type} ${blob.toString('base64')} ${comment}`,
    fingerprint: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
  };
}

/** The signing key and the rotation under way, if any; read from disk on every call. */
export function caState(dir: string): CaState {
  const p = caPaths(dir);
  if (!fs.existsSync(p.current)) throw caError(`no CA key in ${dir}`, 'start gatehouse once on this data directory (or run any gatehouse command) to create it');
  const signing = info(readPrivate(p.current), CA_COMMENT);
  const next = fs.existsSync(p.next) ? info(readPrivate(p.next), `${CA_COMMENT} (next)`) : null;
  return { signing, next };
}

/** The private key that signs now (read per certificate, so a `ca retire` applies at once). */
export function signingKey(dir: string): ssh2.ParsedKey {
  return readPrivate(caPaths(dir).current);
}

/** Step 1 of a rotation: a new key targets can trust while the old one keeps signing. */
export function rotateCa(dir: string): CaState {
  const p = caPaths(dir);
  caState(dir);
  if (!createKeyFile(p.next, `${CA_COMMENT} (next)`)) {
    throw new GatehouseError('GH_INVALID', 'a rotation is already under way', {
      hint: 'give every target the lines of `gatehouse ca show`, then run: gatehouse ca retire',
    });
  }
  return caState(dir);
}

/** Step 2: the new key signs from now on and the old one is dropped, in one rename. */
export function retireCa(dir: string): { retired: CaKeyInfo; signing: CaKeyInfo } {
  const before = caState(dir);
  if (!before.next) {
    throw new GatehouseError('GH_INVALID', 'no rotation is under way, so there is no key to switch to', { hint: 'start one with: gatehouse ca rotate' });
  }
  const p = caPaths(dir);
  fs.renameSync(p.next, p.current);
  return { retired: before.signing, signing: caState(dir).signing };
}

// ── certificates ─────────────────────────────────────────────────────────────────────────────

export const ED25519_CERT_TYPE = 'ssh-ed25519-cert-v01@openssh.com';
const SSH_CERT_TYPE_USER = 1;

export interface CertificateRequest {
  /** The certified key's public blob ("ssh-ed25519" + 32 bytes). */
  publicKey: Buffer;
  serial: bigint;
  keyId: string;
  principals: readonly string[];
  /** Seconds since the epoch. */
  validAfter: number;
  validBefore: number;
  /** e.g. { 'source-address': '10.0.0.1/32' } */
  criticalOptions: Readonly<Record<string, string>>;
  /** Flag extensions such as permit-pty (their data is empty). */
  extensions: readonly string[];
}

export interface Certificate {
  /** The certificate blob as it goes on the wire. */
  blob: Buffer;
  /** "ssh-ed25519-cert-v01@openssh.com BASE64 KEYID", the format of a -cert.pub file. */
  line: string;
  serial: bigint;
  keyId: string;
  caFingerprint: string;
}

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(n); return b; };
const str = (s: string | Buffer) => { const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s; return Buffer.concat([u32(b.length), b]); };

/** Options and extensions: sorted by name, each `string name, string data` (PROTOCOL.certkeys). */
function namedList(entries: [string, string][]): Buffer {
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.concat(sorted.map(([name, value]) => Buffer.concat([str(name), str(value === '' ? Buffer.alloc(0) : str(value))])));
}

function ed25519Point(publicKey: Buffer): Buffer {
  const typeLen = publicKey.readUInt32BE(0);
  const type = publicKey.subarray(4, 4 + typeLen).toString();
  const len = publicKey.readUInt32BE(4 + typeLen);
  const point = publicKey.subarray(8 + typeLen, 8 + typeLen + len);
  if (type !== 'ssh-ed25519' || point.length !== 32) throw new Error('only ed25519 keys are certified');
  return point;
}

/** A user certificate for an ed25519 key, signed by the CA key given. */
export function signCertificate(ca: ssh2.ParsedKey, req: CertificateRequest): Certificate {
  if (req.principals.length === 0) throw new Error('a certificate needs at least one principal');
  if (!(req.validAfter < req.validBefore)) throw new Error('a certificate must be valid for some time');
  if (req.serial < 0n || req.serial >= 1n << 64n) throw new Error('serial out of range');
  const caBlob = ca.getPublicSSH();
  const body = Buffer.concat([
    str(ED25519_CERT_TYPE),
    str(randomBytes(32)),
    str(ed25519Point(req.publicKey)),
    u64(req.serial),
    u32(SSH_CERT_TYPE_USER),
    str(req.keyId),
    str(Buffer.concat(req.principals.map((p) => str(p)))),
    u64(BigInt(Math.max(0, Math.floor(req.validAfter)))),
    u64(BigInt(Math.floor(req.validBefore))),
    str(namedList(Object.entries(req.criticalOptions))),
    str(namedList(req.extensions.map((e) => [e, '']))),
    str(''),
    str(caBlob),
  ]);
  const sig = ca.sign(body);
  if (sig instanceof Error) throw sig;
  const blob = Buffer.concat([body, str(Buffer.concat([str('ssh-ed25519'), str(sig)]))]);
  return {
    blob, line: `${ED25519_CERT_TYPE} ${blob.toString('base64')} ${req.keyId}`, serial: req.serial, keyId: req.keyId,
    caFingerprint: `SHA256:${createHash('sha256').update(caBlob).digest('base64').replace(/=+$/, '')}`,
  };
}

/** A random serial: unique per certificate without a counter shared between processes. */
export function randomSerial(): bigint {
  return randomBytes(8).readBigUInt64BE(0);
}
