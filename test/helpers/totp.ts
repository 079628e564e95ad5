import { createHmac } from 'node:crypto';

/**
 * RFC 6238 TOTP written independently of the product (which uses otplib), so tests check our
 * verification against a second implementation rather than against itself.
 */
export function base32Decode(s: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    const idx = alphabet.indexOf(ch);
    if (idx < 0) throw new Error(`bad base32 character ${ch}`);
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export function totpAt(secretBase32: string, unixSeconds: number, step = 30, digits = 6): string {
  const counter = Math.floor(unixSeconds / step);
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', base32Decode(secretBase32)).update(msg).digest();
  const off = mac[mac.length - 1]! & 0x0f;
  const bin = ((mac[off]! & 0x7f) << 24) | (mac[off + 1]! << 16) | (mac[off + 2]! << 8) | mac[off + 3]!;
  return String(bin % 10 ** digits).padStart(digits, '0');
}

/**
 * A code for a step after `usedStep` (the last step a login of this user may have used): the current
 * step when it is later, else the next one, which gatehouse accepts at once (one step of clock skew,
 * RFC 6238 §5.2). Each step logs in once, so this spares a test the wait (up to 30 s) for the clock
 * to reach a fresh step; the code is still a real one, checked like any other.
 */
export function codeAfter(secretBase32: string, usedStep: number, nowMs = Date.now()): string {
  const step = Math.max(Math.floor(nowMs / 30_000), usedStep + 1);
  return totpAt(secretBase32, step * 30);
}

/** The TOTP step of a time (ms): what a login at that moment with the current code used. */
export const stepAt = (ms = Date.now()): number => Math.floor(ms / 30_000);
