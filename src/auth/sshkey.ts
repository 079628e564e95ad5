import { createHash } from 'node:crypto';
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
}

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
    case 'ssh-rsa': {
      const parts = wireStrings(blob, 3);
      return parts ? mpintBits(parts[2]!) : 0;
    }
    default: return 0;
  }
}

/**
 * Parse one authorized_keys-style line ("TYPE BASE64 [COMMENT]"), refusing anything weak or that we
 * cannot verify: DSA, RSA under 2048 bits, certificates, security-key types, options.
 * `what` names the input in messages (e.g. "line 2").
 */
export function parsePublicKey(line: string, what = 'key'): PublicKeyInfo {
  const tokens = line.trim().split(/\s+/);
  const [type, b64, ...rest] = tokens;
  if (!type || !b64) throw invalid(`${what}: not an SSH public key (expected "TYPE BASE64 [COMMENT]")`, 'give the contents of an id_*.pub file');
  if (!ACCEPTED.has(type) && tokens.slice(1).some((t) => ACCEPTED.has(t) || t === 'ssh-dss')) {
    throw invalid(`${what}: authorized_keys options ("${type.slice(0, 40)}") are not supported`, 'give the key alone: TYPE BASE64 [COMMENT]');
  }
  if (type === 'ssh-dss') throw new GatehouseError('GH_WEAK_KEY', `${what}: DSA keys are refused (weak and disabled in OpenSSH)`, { hint: 'create an ed25519 key: ssh-keygen -t ed25519' });
  if (type.includes('-cert-v01@openssh.com')) throw invalid(`${what}: certificates are not supported`, 'give the plain public key');
  if (type.startsWith('sk-')) throw invalid(`${what}: security-key (${type}) keys are not supported yet`, 'use an ed25519 key: ssh-keygen -t ed25519');
  if (!ACCEPTED.has(type)) throw invalid(`${what}: unknown key type "${type.slice(0, 40)}"`, 'accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa (2048 bits or more)');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw invalid(`${what}: the key data is not base64`);
  const blob = Buffer.from(b64, 'base64');
  const inner = wireStrings(blob, 1);
  if (!inner || inner[0]!.toString('latin1') !== type) throw invalid(`${what}: the key data does not match its type ${type}`);
  const parsed = ssh2.utils.parseKey(`${type} ${b64}`);
  if (parsed instanceof Error) throw invalid(`${what}: malformed ${type} key (${parsed.message})`);
  const bits = keyBits(type, blob);
  if (type === 'ssh-rsa' && bits < MIN_RSA_BITS) {
    throw new GatehouseError('GH_WEAK_KEY', `${what}: RSA key of ${bits} bits is too weak (minimum ${MIN_RSA_BITS})`, { hint: 'create an ed25519 key: ssh-keygen -t ed25519' });
  }
  return { type, bits, fingerprint: fingerprintOf(blob), publicKey: `${type} ${b64}`, comment: rest.join(' '), blob };
}

/** Parse many lines (an authorized_keys file); blank lines and # comments are skipped. All or nothing. */
export function parsePublicKeys(text: string): PublicKeyInfo[] {
  const keys: PublicKeyInfo[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.trim().startsWith('#')) return;
    keys.push(parsePublicKey(line, `line ${i + 1}`));
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
  const parsed = ssh2.utils.parseKey(storedKey);
  const pub = Array.isArray(parsed) ? parsed[0] : parsed;
  return !!pub && !(pub instanceof Error) && pub.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
}
