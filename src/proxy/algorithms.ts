/**
 * Only modern algorithms, on both sides of the bastion: curve25519 (and large DH groups with
 * SHA-2) key exchange, AEAD or CTR+ETM ciphers, no SHA-1, no CBC, no compression. The listener
 * presents an ed25519 host key only (ssh2 adds ssh-rsa whenever an RSA host key is loaded).
 * Strict key exchange (Terrapin) is on by default in ssh2 >= 1.15.
 */
import type { Algorithms, CipherAlgorithm, KexAlgorithm, MacAlgorithm, ServerHostKeyAlgorithm } from 'ssh2';

const kex: KexAlgorithm[] = ['curve25519-sha256', 'curve25519-sha256@libssh.org', 'diffie-hellman-group16-sha512', 'diffie-hellman-group18-sha512'];
const cipher: CipherAlgorithm[] = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes256-ctr', 'aes192-ctr', 'aes128-ctr'];
const hmac: MacAlgorithm[] = ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com'];

export const SERVER_ALGORITHMS: Algorithms = {
  kex,
  cipher,
  hmac,
  serverHostKey: ['ssh-ed25519'],
  compress: ['none'],
};

/** Host key algorithms to ask a target for, so it presents the type of key that is pinned. */
export function hostKeyAlgorithmsFor(pinnedType: string): ServerHostKeyAlgorithm[] {
  switch (pinnedType) {
    case 'ssh-rsa': return ['rsa-sha2-512', 'rsa-sha2-256'];
    case 'ssh-ed25519':
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521':
      return [pinnedType as ServerHostKeyAlgorithm];
    default: return ['ssh-ed25519'];
  }
}

export function clientAlgorithms(pinnedType: string): Algorithms {
  return { kex, cipher, hmac, serverHostKey: hostKeyAlgorithmsFor(pinnedType), compress: ['none'] };
}
