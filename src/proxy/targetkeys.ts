import { createPrivateKey, createPublicKey, hkdfSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { maySsh } from '../auth/policy.js';
import type { Store } from '../store/types.js';

/**
 * The host key gatehouse presents for a target when it terminates `ssh -J` itself: one ed25519 key
 * per host, named by host id: the key follows the id, not the name. A removed and re-added name gets
 * a new key only when it gets a new id, which SQLite does not promise (hosts.id is a plain INTEGER
 * PRIMARY KEY: the highest id, once removed, is given again); PostgreSQL's identity never reuses one.
 *
 * A key file in dataDir/target_keys/ (0600) wins when present: deployments from before the keys were
 * derived keep the keys their operators' known_hosts already trust. Otherwise the key is derived from
 * master.key (HKDF-SHA256, a fixed label and the host id → the Ed25519 seed), so every node holding
 * the same master.key presents the same key for a host, including a host added after the data
 * directory was copied: target_keys/ no longer has to be carried from node to node. A derived key is
 * never written to disk; it is as secret as master.key and cannot be more exposed than it.
 */
export function targetKeyPath(dir: string, hostId: number): string {
  return path.join(dir, `host-${hostId}_ed25519`);
}

/** Changing it changes every derived target key: operators' known_hosts would all break. */
const LABEL = 'gatehouse target host key v1';
/** PKCS#8 DER header of an Ed25519 private key; the 32-byte seed follows (RFC 8410). */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

export function targetHostKey(dir: string, hostId: number, masterKey: Buffer): { privateKey: Buffer; publicKey: string } {
  const file = targetKeyPath(dir, hostId);
  let privateKey: Buffer;
  try {
    privateKey = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    privateKey = derivedTargetKey(masterKey, hostId);
  }
  const parsed = ssh2.utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error(`target host key ${file} cannot be read`);
  return { privateKey, publicKey: `${key.type} ${key.getPublicSSH().toString('base64')}` };
}

/** The Ed25519 key of host `hostId` derived from master.key, in OpenSSH's private key format (what ssh2 reads). */
export function derivedTargetKey(masterKey: Buffer, hostId: number): Buffer {
  if (masterKey.length < 32) throw new Error('the master key is too short to derive target host keys from');
  const seed = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), Buffer.from(`${LABEL}\0host ${hostId}`), 32));
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
  const pub = Buffer.from(createPublicKey(priv).export({ format: 'jwk' }).x!, 'base64url');
  return openSshEd25519(seed, pub, `gatehouse host ${hostId}`);
}

/** PROTOCOL.key ("openssh-key-v1"), unencrypted, one Ed25519 key. */
function openSshEd25519(seed: Buffer, pub: Buffer, comment: string): Buffer {
  const str = (b: Buffer | string) => {
    const v = typeof b === 'string' ? Buffer.from(b) : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(v.length);
    return Buffer.concat([len, v]);
  };
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };
  const pubBlob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  // The check word only has to match itself; derived from the seed so the output is deterministic.
  const check = seed.readUInt32BE(0);
  let body = Buffer.concat([u32(check), u32(check), str('ssh-ed25519'), str(pub), str(Buffer.concat([seed, pub])), str(comment)]);
  const pad = (8 - (body.length % 8)) % 8;
  body = Buffer.concat([body, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const raw = Buffer.concat([Buffer.from('openssh-key-v1\0'), str('none'), str('none'), str(''), u32(1), str(pubBlob), str(body)]);
  const b64 = raw.toString('base64').replace(/.{1,70}/g, '$&\n');
  return Buffer.from(`-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}-----END OPENSSH PRIVATE KEY-----\n`);
}

/** known_hosts lines an operator needs for `ssh -J` to a host (by name, and with its port if not 22). */
export function knownHostsLines(host: { name: string; port: number }, publicKey: string): string[] {
  const lines = [`${host.name} ${publicKey}`];
  if (host.port !== 22) lines.push(`[${host.name}]:${host.port} ${publicKey}`);
  return lines;
}

/** The known_hosts lines for the hosts a user may reach (all hosts when user is null). */
export async function knownHostsFor(store: Store, keys: { dir: string; masterKey: Buffer }, user: string | null, now: number): Promise<string[]> {
  let hosts = await store.hosts.list();
  if (user !== null) {
    const record = await store.users.get(user);
    const grants = await store.grants.list();
    hosts = !record ? [] : hosts.filter((h) => maySsh(record, h, grants, now));
  }
  return hosts.flatMap((h) => knownHostsLines(h, targetHostKey(keys.dir, h.id, keys.masterKey).publicKey));
}
