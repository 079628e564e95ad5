import { Client } from 'ssh2';
import { isGrant, type Grant } from '../auth/policy.js';
import { fingerprintOf, parsePublicKey } from '../auth/sshkey.js';
import { clientAlgorithms } from './algorithms.js';

/**
 * Reaches a target with the bastion's own client key (or, for `--auth cert` hosts, an ephemeral key
 * and its certificate, see targetauth.ts), and only with a Grant minted by the policy.
 * The target's host key must equal the pinned one: ssh2 accepts any host key unless hostVerifier
 * says otherwise, so the check is explicit and a mismatch is an error of its own kind.
 */
export type DialError =
  | { kind: 'not_pinned'; message: string }
  | { kind: 'host_key_mismatch'; message: string; presented: string; expected: string }
  | { kind: 'connect_failed'; message: string };

export class DialFailure extends Error {
  constructor(readonly detail: DialError) {
    super(detail.message);
  }
}

export interface DialOptions {
  /** The static client key, or the channel's ephemeral key when `certificate` is set. */
  clientKey: Buffer | string;
  /** A certificate for clientKey (ssh2 presents it through our patch; see patches/). */
  certificate?: Buffer;
  readyTimeoutMs?: number;
}

export function dial(grant: Grant, opts: DialOptions): Promise<Client> {
  if (!isGrant(grant)) return Promise.reject(new Error('dial() needs a Grant from authorize()'));
  if (!grant.hostKey) {
    return Promise.reject(new DialFailure({ kind: 'not_pinned', message: `host ${grant.host} has no pinned host key; ask an admin (gatehouse host trust ${grant.host})` }));
  }
  const pinned = parsePublicKey(grant.hostKey);
  return new Promise((resolve, reject) => {
    const client = new Client();
    let mismatch: DialError | null = null;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(mismatch ? new DialFailure(mismatch) : new DialFailure({ kind: 'connect_failed', message: err.message }));
    };
    client.once('ready', () => {
      settled = true;
      resolve(client);
    });
    client.on('error', fail);
    client.once('close', () => fail(new Error('connection closed during handshake')));
    client.connect({
      host: grant.address,
      port: grant.port,
      username: grant.login,
      privateKey: opts.clientKey,
      ...(opts.certificate ? { certificate: opts.certificate } : {}),
      algorithms: clientAlgorithms(pinned.type),
      readyTimeout: opts.readyTimeoutMs ?? 15_000,
      keepaliveInterval: 30_000,
      hostVerifier: (key: Buffer) => {
        if (key.equals(pinned.blob)) return true;
        mismatch = {
          kind: 'host_key_mismatch', presented: fingerprintOf(key), expected: pinned.fingerprint,
          message: `host key of ${grant.host} changed (presented ${fingerprintOf(key)}); ask an admin`,
        };
        return false;
      },
    });
    // Interactive traffic both ways (see server.ts): no Nagle delay on the target hop either.
    client.setNoDelay(true);
  });
}
