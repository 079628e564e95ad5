import { createHash } from 'node:crypto';

/**
 * Recordings are chained in the order they close, like the audit log: each row's chain hash
 * covers the previous row's chain hash and this recording's identity, state, size and SHA-256, and
 * is signed with the bastion's host key. Deleting or editing a row breaks the chain; editing a file
 * breaks its SHA-256; replacing both needs the bastion's private key.
 */
export const RECORDINGS_GENESIS = '0'.repeat(64);

export function recordingChainHash(prev: string, r: { seq: number; sessionId: string; channel: number; path: string; state: string; size: number; sha256: string }): string {
  const canonical = JSON.stringify([r.seq, r.sessionId, r.channel, r.path, r.state, r.size, r.sha256]);
  return createHash('sha256').update(prev).update('\n').update(canonical).digest('hex');
}
