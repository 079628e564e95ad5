import { generateSecret, generateURI, verifySync } from 'otplib';
import { invalid } from '../shared/errors.js';

/** TOTP per RFC 6238 with the authenticator-app defaults: SHA-1, 6 digits, 30-second steps. */
export const TOTP_PERIOD_S = 30;
export const ISSUER = 'gatehouse';

export function newSecret(): string {
  return generateSecret();
}

/** Validate an imported base32 secret: at least 128 bits, as RFC 4226 asks. */
export function normalizeSecret(text: string): string {
  const s = text.replace(/[\s-]/g, '').toUpperCase().replace(/=+$/, '');
  if (!/^[A-Z2-7]+$/.test(s)) throw invalid('TOTP secret is not base32 (letters A-Z and digits 2-7)', 'give the secret as shown by your authenticator export, e.g. 32 characters');
  if (Math.floor((s.length * 5) / 8) < 16) throw invalid(`TOTP secret is too short (${Math.floor((s.length * 5) / 8)} bytes; at least 16 are needed)`, 'use 26 or more base32 characters, or omit --secret to generate one');
  return s;
}

export function otpauthUri(user: string, secret: string): string {
  return generateURI({ issuer: ISSUER, label: user, secret });
}

export type TotpCheck = { ok: true; step: number } | { ok: false; reason: 'bad_format' | 'wrong_code' };

/**
 * Check a code at a given time (ms), allowing one step of clock skew on either side. Replay is
 * the caller's job: it must claim the returned step atomically (Store.totp.claimStep).
 */
export function checkCode(secret: string, code: string, nowMs: number, lastStep: number | null): TotpCheck {
  if (!/^\d{6}$/.test(code)) return { ok: false, reason: 'bad_format' };
  const epoch = Math.floor(nowMs / 1000);
  const r = verifySync({
    secret,
    token: code,
    epoch,
    epochTolerance: TOTP_PERIOD_S,
    ...(lastStep === null ? {} : { afterTimeStep: lastStep }),
  });
  return r.valid ? { ok: true, step: Math.floor(epoch / TOTP_PERIOD_S) + r.delta } : { ok: false, reason: 'wrong_code' };
}
