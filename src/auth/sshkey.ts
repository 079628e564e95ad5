import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import ssh2 from 'ssh2';
import type { PublicKeyAuthContext } from 'ssh2';
import { GatehouseError, invalid } from '../shared/errors.js';

/** A public key we accept, identified by its OpenSSH SHA256 fingerprint. */
export interface PublicKeyInfo {
  type: string;
  bits: number;
  fingerprint: string;
  /** "TYPE BASE64", without the comment. */
  publicKey: string;
  comment: string;
  blob: Buffer;
  /** Security keys (sk-…): the FIDO application the key was made for ("ssh:" unless chosen). */
  application?: string;
  /** Security keys: every signature must carry the user-verification flag (PIN or biometric). */
  verifyRequired?: boolean;
}

/** FIDO2 security-key types (OpenSSH PROTOCOL.u2f). */
export const SK_ED25519 = 'sk-ssh-ed25519@openssh.com';
export const SK_ECDSA = 'sk-ecdsa-sha2-nistp256@openssh.com';
export const isSecurityKeyType = (type: string): boolean => type === SK_ED25519 || type === SK_ECDSA;
/** Authenticator data flags (PROTOCOL.u2f, WebAuthn §6.1). */
export const SK_FLAG_PRESENCE = 0x01;
export const SK_FLAG_VERIFIED = 0x04;
const MAX_APPLICATION = 128;

const ACCEPTED = new Set(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa']);
const MIN_RSA_BITS = 2048;

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Read the SSH wire strings of a key blob (RFC 4253 §6.6). */
function wireStrings(blob: Buffer, count: number): Buffer[] | null {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 4 > blob.length) return null;
    const len = blob.readUInt32BE(off);
    off += 4;
    if (off + len > blob.length) return null;
    out.push(blob.subarray(off, off + len));
    off += len;
  }
  return out;
}

function mpintBits(m: Buffer): number {
  let i = 0;
  while (i < m.length && m[i] === 0) i++;
  if (i === m.length) return 0;
  return (m.length - i - 1) * 8 + (32 - Math.clz32(m[i]!));
}

function keyBits(type: string, blob: Buffer): number {
  switch (type) {
    case 'ssh-ed25519': return 256;
    case 'ecdsa-sha2-nistp256': return 256;
    case 'ecdsa-sha2-nistp384': return 384;
    case 'ecdsa-sha2-nistp521': return 521;
    case SK_ED25519: return 256;
    case SK_ECDSA: return 256;
    case 'ssh-rsa': {
      const parts = wireStrings(blob, 3);
      return parts ? mpintBits(parts[2]!) : 0;
    }
    default: return 0;
  }
}

/**
 * Parse one authorized_keys-style line ("TYPE BASE64 [COMMENT]"), refusing anything weak or that we
 * cannot verify: DSA, RSA under 2048 bits, certificates, options. Security-key (sk-) types only
 * when `opts.securityKeys` (operators' login keys; never a host key), optionally after the one
 * option that makes sense for them, `verify-required`.
 * `what` names the input in messages (e.g. "line 2").
 */
export function parsePublicKey(line: string, what = 'key', opts: { securityKeys?: boolean } = {}): PublicKeyInfo {
  let tokens = line.trim().split(/\s+/);
  let verifyRequired = false;
  if (opts.securityKeys && tokens[0] === 'verify-required') {
    verifyRequired = true;
    tokens = tokens.slice(1);
  }
  if (opts.securityKeys && tokens[0] !== undefined && /(^|,)no-touch-required(,|$)/.test(tokens[0])) {
    throw invalid(`${what}: no-touch-required is refused: gatehouse always requires the touch (user presence)`, 'give the key alone, or with verify-required');
  }
  const [type, b64, ...rest] = tokens;
  if (!type || !b64) throw invalid(`${what}: not an SSH public key (expected "TYPE BASE64 [COMMENT]")`, 'give the contents of an id_*.pub file');
  const known = (t: string) => ACCEPTED.has(t) || (opts.securityKeys === true && isSecurityKeyType(t));
  if (!known(type) && tokens.slice(1).some((t) => known(t) || t === 'ssh-dss')) {
    throw invalid(`${what}: authorized_keys options ("${type.slice(0, 40)}") are not supported`, opts.securityKeys ? 'give the key alone (TYPE BASE64 [COMMENT]), or with verify-required' : 'give the key alone: TYPE BASE64 [COMMENT]');
  }
  if (type === 'ssh-dss') throw new GatehouseError('GH_WEAK_KEY', `${what}: DSA keys are refused (weak and disabled in OpenSSH)`, { hint: 'create an ed25519 key: ssh-keygen -t ed25519' });
  if (type.includes('-cert-v01@openssh.com')) throw invalid(`${what}: certificates are not supported`, 'give the plain public key');
  if (type.startsWith('sk-') && !(opts.securityKeys && isSecurityKeyType(type))) {
    throw invalid(`${what}: security-key (${type.slice(0, 40)}) keys are not accepted here`, opts.securityKeys ? `accepted security keys: ${SK_ED25519}, ${SK_ECDSA}` : 'give a plain key');
  }
  if (!known(type)) throw invalid(`${what}: unknown key type "${type.slice(0, 40)}"`, 'accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa (2048 bits or more)');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw invalid(`${what}: the key data is not base64`);
  const blob = Buffer.from(b64, 'base64');
  const inner = wireStrings(blob, 1);
  if (!inner || inner[0]!.toString('latin1') !== type) throw invalid(`${what}: the key data does not match its type ${type}`);
  const info = { type, fingerprint: fingerprintOf(blob), publicKey: `${type} ${b64}`, comment: rest.join(' '), blob };
  if (isSecurityKeyType(type)) {
    const sk = parseSecurityKey(blob);
    if (sk instanceof Error) throw invalid(`${what}: malformed ${type} key (${sk.message})`);
    return { ...info, bits: 256, application: sk.application, verifyRequired };
  }
  const parsed = ssh2.utils.parseKey(`${type} ${b64}`);
  if (parsed instanceof Error) throw invalid(`${what}: malformed ${type} key (${parsed.message})`);
  const bits = keyBits(type, blob);
  if (type === 'ssh-rsa' && bits < MIN_RSA_BITS) {
    throw new GatehouseError('GH_WEAK_KEY', `${what}: RSA key of ${bits} bits is too weak (minimum ${MIN_RSA_BITS})`, { hint: 'create an ed25519 key: ssh-keygen -t ed25519' });
  }
  return { ...info, bits };
}

/** Parse many lines (an authorized_keys file); blank lines and # comments are skipped. All or nothing. */
export function parsePublicKeys(text: string): PublicKeyInfo[] {
  const keys: PublicKeyInfo[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.trim().startsWith('#')) return;
    keys.push(parsePublicKey(line, `line ${i + 1}`, { securityKeys: true }));
  });
  if (keys.length === 0) throw invalid('no public key found in the input', 'give one or more lines like "ssh-ed25519 AAAA… comment"');
  return keys;
}

/** "SHA256:…" as OpenSSH prints it; also accepts it without the prefix. */
export function normalizeFingerprint(text: string): string {
  const s = text.trim();
  const body = s.startsWith('SHA256:') ? s.slice(7) : s;
  if (!/^[A-Za-z0-9+/]{43}$/.test(body)) {
    throw invalid(`"${s.slice(0, 80)}" is not a SHA256 fingerprint`, 'copy it from: gatehouse user key list NAME (SHA256:… with 43 characters)');
  }
  return `SHA256:${body}`;
}

/** SHA-1 RSA signatures and DSA keys are refused whatever key is stored. */
export function isWeakSignature(ctx: Pick<PublicKeyAuthContext, 'key' | 'signature' | 'hashAlgo'>): boolean {
  return ctx.key.algo === 'ssh-dss' || (!!ctx.signature && (ctx.hashAlgo === 'sha1' || (ctx.key.algo === 'ssh-rsa' && !ctx.hashAlgo)));
}

/** True when the signature of a publickey authentication was made by the stored key ("TYPE BASE64"). */
export function verifySignature(storedKey: string, ctx: Pick<PublicKeyAuthContext, 'key' | 'signature' | 'blob' | 'hashAlgo'>): boolean {
  if (!ctx.signature || !ctx.blob || isWeakSignature(ctx)) return false;
  // A security key's signature means nothing without its flags and counter: verifyKeySignature().
  if (isSecurityKeyType(storedKey.split(' ')[0]!)) return false;
  const parsed = ssh2.utils.parseKey(storedKey);
  const pub = Array.isArray(parsed) ? parsed[0] : parsed;
  return !!pub && !(pub instanceof Error) && pub.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
}

// ── FIDO2 security keys (OpenSSH PROTOCOL.u2f) ──────────────────────────────────────────────────

/** The SPKI DER prefix of an Ed25519 public key (RFC 8410): the raw 32 bytes follow. */
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

interface SecurityKey {
  key: KeyObject;
  application: string;
}

/**
 * An sk- public key blob: string type, the key (ed25519: string pk; ecdsa: string "nistp256",
 * string Q), string application. Nothing may follow; the application is printable and, as
 * OpenSSH requires when it makes one, starts with "ssh:" (a key scoped to a web origin was not
 * made for SSH).
 */
export function parseSecurityKey(blob: Buffer): SecurityKey | Error {
  const type = wireStrings(blob, 1)?.[0]?.toString('latin1');
  const parts = wireStrings(blob, type === SK_ECDSA ? 4 : 3);
  if (!parts || !type || !isSecurityKeyType(type)) return new Error('truncated key data');
  if (parts.reduce((n, p) => n + 4 + p.length, 0) !== blob.length) return new Error('trailing data after the key');
  const application = parts[parts.length - 1]!.toString('latin1');
  if (!/^ssh:[\x21-\x7e]*$/.test(application) || application.length > MAX_APPLICATION) {
    return new Error(`the application must be "ssh:" or start with it, printable, at most ${MAX_APPLICATION} characters`);
  }
  try {
    if (type === SK_ED25519) {
      const pk = parts[1]!;
      if (pk.length !== 32) return new Error('an Ed25519 key is 32 bytes');
      return { key: createPublicKey({ key: Buffer.concat([ED25519_SPKI, pk]), format: 'der', type: 'spki' }), application };
    }
    const [, curve, q] = parts;
    if (curve!.toString('latin1') !== 'nistp256') return new Error('the curve must be nistp256');
    if (q!.length !== 65 || q![0] !== 0x04) return new Error('the point must be an uncompressed P-256 point');
    const jwk = { kty: 'EC', crv: 'P-256', x: q!.subarray(1, 33).toString('base64url'), y: q!.subarray(33).toString('base64url') };
    return { key: createPublicKey({ key: jwk, format: 'jwk' }), application }; // throws off the curve
  } catch {
    return new Error('not a valid public key');
  }
}

export interface SkSignature {
  /** What the key signed with: Ed25519 raw 64 bytes, ECDSA r‖s 32 bytes each. */
  sig: Buffer;
  flags: number;
  counter: number;
}

/** Read `string` fields and fixed-width fields off a buffer; null when anything is short. */
class Reader {
  off = 0;
  constructor(private readonly b: Buffer) {}
  string(): Buffer | null {
    if (this.off + 4 > this.b.length) return null;
    const len = this.b.readUInt32BE(this.off);
    if (this.off + 4 + len > this.b.length) return null;
    const s = this.b.subarray(this.off + 4, this.off + 4 + len);
    this.off += 4 + len;
    return s;
  }
  flagsAndCounter(): { flags: number; counter: number } | null {
    if (this.off + 5 > this.b.length) return null;
    const r = { flags: this.b[this.off]!, counter: this.b.readUInt32BE(this.off + 1) };
    this.off += 5;
    return r;
  }
  done(): boolean { return this.off === this.b.length; }
}

/** An SSH mpint that must be a positive integer of at most 32 bytes, left-padded to 32. */
function scalar(m: Buffer | null): Buffer | null {
  if (!m || m.length === 0 || m.length > 33 || (m[0]! & 0x80) !== 0) return null;
  const v = m[0] === 0 ? m.subarray(1) : m;
  if (v.length > 32 || (m.length === 33 && m[0] !== 0)) return null;
  const out = Buffer.alloc(32);
  v.copy(out, 32 - v.length);
  return out.equals(Buffer.alloc(32)) ? null : out;
}

/**
 * The parts of an sk- signature. On the wire it is: string type, string signature (ed25519: 64
 * bytes; ecdsa: string(mpint r, mpint s)), byte flags, uint32 counter. ssh2 hands it over with the
 * type and the inner length cut off when the type matches the key's; both forms are read, and
 * nothing may follow the counter.
 */
export function parseSkSignature(type: string, signature: Buffer): SkSignature | null {
  const full = new Reader(signature);
  const named = full.string();
  let r: Reader;
  let raw: Buffer | null;
  if (named && named.toString('latin1') === type) {
    raw = full.string();
    r = full;
  } else {
    r = new Reader(signature);
    raw = null;
  }
  let sig: Buffer | null;
  if (type === SK_ED25519) {
    if (raw === null) {
      if (signature.length !== 64 + 5) return null;
      raw = signature.subarray(0, 64);
      r.off = 64;
    }
    sig = raw.length === 64 ? raw : null;
  } else if (type === SK_ECDSA) {
    const inner = raw === null ? r : new Reader(raw);
    const rs = scalar(inner.string());
    const ss = scalar(inner.string());
    if (raw !== null && !inner.done()) return null;
    sig = rs && ss ? Buffer.concat([rs, ss]) : null;
  } else {
    return null;
  }
  const fc = r.flagsAndCounter();
  if (!sig || !fc || !r.done()) return null;
  return { sig, ...fc };
}

/** PROTOCOL.u2f: SHA-256(application) ‖ flags ‖ counter (uint32 BE) ‖ SHA-256(message). */
export function skSignedData(application: string, flags: number, counter: number, message: Buffer): Buffer {
  const fc = Buffer.alloc(5);
  fc[0] = flags;
  fc.writeUInt32BE(counter >>> 0, 1);
  return Buffer.concat([
    createHash('sha256').update(application, 'latin1').digest(), fc, createHash('sha256').update(message).digest(),
  ]);
}

export type KeySignatureCheck =
  | { ok: true; sk: { flags: number; counter: number } | null }
  | { ok: false; reason: 'bad_signature' | 'sk_no_presence' | 'sk_no_verification' };

/**
 * Was this publickey signature made by the stored key? For a security key also: did the
 * authenticator see the user (presence flag, always required) and, for a key marked
 * verify-required, verify them (PIN or biometric)? The flags are only read once the signature over
 * them is known good. The counter is returned for the caller to claim (it must grow).
 */
export function verifyKeySignature(
  stored: { publicKey: string; verifyRequired?: boolean },
  ctx: Pick<PublicKeyAuthContext, 'key' | 'signature' | 'blob' | 'hashAlgo'>,
): KeySignatureCheck {
  const type = stored.publicKey.split(' ')[0]!;
  if (!isSecurityKeyType(type)) return verifySignature(stored.publicKey, ctx) ? { ok: true, sk: null } : { ok: false, reason: 'bad_signature' };
  if (!ctx.signature || !ctx.blob || ctx.key.algo !== type) return { ok: false, reason: 'bad_signature' };
  const pub = parseSecurityKey(Buffer.from(stored.publicKey.split(' ')[1] ?? '', 'base64'));
  const parts = parseSkSignature(type, ctx.signature);
  if (pub instanceof Error || !parts) return { ok: false, reason: 'bad_signature' };
  const data = skSignedData(pub.application, parts.flags, parts.counter, ctx.blob);
  const good = type === SK_ED25519
    ? cryptoVerify(null, data, pub.key, parts.sig)
    : cryptoVerify('sha256', data, { key: pub.key, dsaEncoding: 'ieee-p1363' }, parts.sig);
  if (!good) return { ok: false, reason: 'bad_signature' };
  if ((parts.flags & SK_FLAG_PRESENCE) === 0) return { ok: false, reason: 'sk_no_presence' };
  if (stored.verifyRequired && (parts.flags & SK_FLAG_VERIFIED) === 0) return { ok: false, reason: 'sk_no_verification' };
  return { ok: true, sk: { flags: parts.flags, counter: parts.counter } };
}
