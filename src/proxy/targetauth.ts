import ssh2 from 'ssh2';
import { randomSerial, signCertificate, signingKey, type CertificateRequest } from '../auth/ca.js';
import { isGrant, type Grant } from '../auth/policy.js';
import type { Clock } from '../shared/clock.js';
import type { TargetAuthMode } from '../store/types.js';

/**
 * How the bastion proves itself to a target, per host (`host add|set --auth cert|key`):
 *   key   the static client key every such target has in authorized_keys
 *   cert  a fresh ed25519 key, made for this one channel and never stored, and a certificate for it
 *         from the user CA: principal = the granted login only, valid from a minute ago (clock skew)
 *         until the earlier of the grant's end and targets.certificateTtl, pty and forwarding only
 *         when the channel and the grant call for them. The key id names operator, session and
 *         channel, so the target's own log says who was behind the login.
 * Neither the ephemeral private key nor the certificate ever leaves this process: they go to the
 * ssh2 client that dials, and only the serial and key id are kept (for the audit row).
 */
export interface TargetAuthDeps {
  /** The data directory holding the CA keys; the signing key is read per certificate. */
  caDir: string;
  clientKey: Buffer;
  clock: Clock;
  certificateTtlMs: number;
  sourceAddresses: readonly string[];
}

/** What the channel asks for, which shapes the certificate's extensions and key id. */
export interface ChannelPurpose {
  session: string;
  channel: number;
  kind: 'shell' | 'exec' | 'subsystem';
  pty: boolean;
}

export interface Credentials {
  privateKey: Buffer | string;
  certificate?: Buffer;
  /** For the audit row of the channel; absent with the static key. */
  cert?: { serial: string; keyId: string; validBefore: number; caFingerprint: string };
}

/** How far back a certificate is valid, so a target whose clock runs a little behind accepts it. */
const BACKDATE_S = 60;

export class TargetAuth {
  constructor(private readonly deps: TargetAuthDeps) {}

  credentials(grant: Grant, auth: TargetAuthMode | undefined, purpose: ChannelPurpose): Credentials {
    if (auth !== 'cert') return { privateKey: this.deps.clientKey };
    if (!isGrant(grant)) throw new Error('a certificate needs a Grant from authorize()');
    const eph = ssh2.utils.generateKeyPairSync('ed25519');
    const parsed = ssh2.utils.parseKey(eph.private);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error) throw new Error('ephemeral key generation failed');
    const fields = certificateFields(grant, purpose, key.getPublicSSH(), this.deps);
    const cert = signCertificate(signingKey(this.deps.caDir), fields);
    return {
      privateKey: eph.private, certificate: cert.blob,
      cert: { serial: cert.serial.toString(), keyId: cert.keyId, validBefore: fields.validBefore, caFingerprint: cert.caFingerprint },
    };
  }
}

function certValidBefore(grant: Grant, deps: Pick<TargetAuthDeps, 'clock' | 'certificateTtlMs'>): number {
  const end = Math.min(deps.clock.now() + deps.certificateTtlMs, grant.until ?? Infinity);
  // Rounded down: never a second past the grant's end.
  return Math.floor(end / 1000);
}

/** The certificate's fields for one channel (exported for the unit test, which checks each rule). */
export function certificateFields(
  grant: Grant, purpose: ChannelPurpose, publicKey: Buffer, deps: Pick<TargetAuthDeps, 'clock' | 'certificateTtlMs' | 'sourceAddresses'>,
): CertificateRequest {
  const nowS = Math.floor(deps.clock.now() / 1000);
  const extensions: string[] = [];
  if (purpose.kind === 'shell' || (purpose.kind === 'exec' && purpose.pty)) extensions.push('permit-pty');
  // gatehouse makes port forwards itself and refuses agent and X11 forwarding to operators, so the
  // target never needs those; port forwarding is allowed to the grants that have the right.
  if (grant.rights.includes('forward')) extensions.push('permit-port-forwarding');
  return {
    publicKey,
    serial: randomSerial(),
    keyId: `gatehouse:${grant.user}:${purpose.session}:${purpose.channel}`,
    principals: [grant.login],
    validAfter: nowS - BACKDATE_S,
    validBefore: certValidBefore(grant, deps),
    criticalOptions: deps.sourceAddresses.length > 0 ? { 'source-address': deps.sourceAddresses.join(',') } : {},
    extensions,
  };
}
