import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { GatehouseError } from '../shared/errors.js';

/**
 * AES-256-GCM sealing of small secrets at rest (TOTP seeds). The associated data binds a sealed value
 * to its row (e.g. "totp:user:42"), so a sealed secret copied onto another user's row fails to open.
 * Layout: version(1) | nonce(12) | tag(16) | ciphertext.
 */
const VERSION = 1;

export function seal(masterKey: Buffer, plaintext: Buffer, aad: string): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', masterKey, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, cipher.getAuthTag(), ct]);
}

export function open(masterKey: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < 29 || sealed[0] !== VERSION) {
    throw new GatehouseError('GH_STORE', 'sealed secret has an unknown format');
  }
  const decipher = createDecipheriv('aes-256-gcm', masterKey, sealed.subarray(1, 13));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(sealed.subarray(13, 29));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(29)), decipher.final()]);
  } catch (err) {
    throw new GatehouseError('GH_STORE', 'sealed secret cannot be opened with this master key', {
      hint: 'the master.key in the data directory does not match the one the secret was sealed with',
      cause: err,
    });
  }
}
