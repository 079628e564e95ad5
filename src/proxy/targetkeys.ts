import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { maySsh } from '../auth/policy.js';
import type { Store } from '../store/types.js';

/**
 * The host key gatehouse presents for a target when it terminates `ssh -J` itself: one ed25519 key
 * per host, generated on first use, kept in dataDir/target_keys/ (0600), named by host id so a
 * removed and re-added name gets a new key.
 */
export function targetKeyPath(dir: string, hostId: number): string {
  return path.join(dir, `host-${hostId}_ed25519`);
}

export function targetHostKey(dir: string, hostId: number): { privateKey: Buffer; publicKey: string } {
  const file = targetKeyPath(dir, hostId);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: `gatehouse host ${hostId}` });
    try {
      fs.writeFileSync(file, pair.private, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const privateKey = fs.readFileSync(file);
  const parsed = ssh2.utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error(`target host key ${file} cannot be read`);
  return { privateKey, publicKey: `${key.type} ${key.getPublicSSH().toString('base64')}` };
}

/** known_hosts lines an operator needs for `ssh -J` to a host (by name, and with its port if not 22). */
export function knownHostsLines(host: { name: string; port: number }, publicKey: string): string[] {
  const lines = [`${host.name} ${publicKey}`];
  if (host.port !== 22) lines.push(`[${host.name}]:${host.port} ${publicKey}`);
  return lines;
}

/** The known_hosts lines for the hosts a user may reach (all hosts when user is null). */
export async function knownHostsFor(store: Store, dir: string, user: string | null, now: number): Promise<string[]> {
  let hosts = await store.hosts.list();
  if (user !== null) {
    const record = await store.users.get(user);
    const grants = await store.grants.list();
    hosts = !record ? [] : hosts.filter((h) => maySsh(record, h, grants, now));
  }
  return hosts.flatMap((h) => knownHostsLines(h, targetHostKey(dir, h.id).publicKey));
}
