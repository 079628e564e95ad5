import type { PublicKeyAuthContext } from 'ssh2';
import type { KeyRecord, Store } from '../store/types.js';
import { verifyKeySignature } from './sshkey.js';

/**
 * The proof of possession of a stored key, the same for the login and for the inner connection of
 * `ssh -J`: the signature, and for a security key its flags (touch; PIN when the key is
 * verify-required) and its counter, which must grow. The counter is claimed in the store in one
 * atomic step, so a signature (or a cloned authenticator's) can be used once.
 */
export type KeyProof =
  | { ok: true; securityKey: boolean }
  | { ok: false; reason: 'bad_signature' | 'sk_no_presence' | 'sk_no_verification' | 'sk_counter' };

export async function proveKey(
  store: Store, key: KeyRecord, ctx: Pick<PublicKeyAuthContext, 'key' | 'signature' | 'blob' | 'hashAlgo'>,
): Promise<KeyProof> {
  const v = verifyKeySignature(key, ctx);
  if (!v.ok) return v;
  if (v.sk === null) return { ok: true, securityKey: false };
  if (!(await store.keys.claimCounter(key.fingerprint, v.sk.counter))) return { ok: false, reason: 'sk_counter' };
  return { ok: true, securityKey: true };
}
