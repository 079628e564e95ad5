import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { openDataDir } from '../../../src/datadir/datadir.js';
import { derivedTargetKey, targetHostKey, targetKeyPath } from '../../../src/proxy/targetkeys.js';
import { tempDir } from '../../helpers/cli.js';

/** A second node's data directory made with the first one's master.key (what the README says to copy). */
function secondNode(masterKeyFrom?: string): ReturnType<typeof openDataDir> {
  const dir = path.join(tempDir(), 'data');
  fs.mkdirSync(dir, { mode: 0o700 });
  if (masterKeyFrom) fs.copyFileSync(masterKeyFrom, path.join(dir, 'master.key'));
  if (masterKeyFrom) fs.chmodSync(path.join(dir, 'master.key'), 0o600);
  return openDataDir(dir);
}

describe('target host keys (ssh -J) derived from master.key', () => {
  it('two data directories sharing master.key present the same key for a host added later; another master key gives another key', () => {
    const a = secondNode();
    const b = secondNode(a.paths.masterKey);
    const other = secondNode();
    for (const hostId of [1, 2, 77]) {
      const ka = targetHostKey(a.paths.targetKeys, hostId, a.masterKey);
      expect(targetHostKey(b.paths.targetKeys, hostId, b.masterKey).publicKey).toBe(ka.publicKey);
      expect(targetHostKey(other.paths.targetKeys, hostId, other.masterKey).publicKey).not.toBe(ka.publicKey);
      expect(ka.publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/=]+$/);
    }
    // One key per host: a removed and re-added name (a new id) gets a new key.
    expect(targetHostKey(a.paths.targetKeys, 1, a.masterKey).publicKey).not.toBe(targetHostKey(a.paths.targetKeys, 2, a.masterKey).publicKey);
    // Nothing is written: the key is as secret as master.key and lives nowhere else.
    expect(fs.existsSync(targetKeyPath(a.paths.targetKeys, 1))).toBe(false);
  });

  it('an existing key file wins (deployments keep the keys their operators trust)', () => {
    const a = secondNode();
    const legacy = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'gatehouse host 5' });
    fs.mkdirSync(a.paths.targetKeys, { recursive: true, mode: 0o700 });
    fs.writeFileSync(targetKeyPath(a.paths.targetKeys, 5), legacy.private, { mode: 0o600 });
    expect(targetHostKey(a.paths.targetKeys, 5, a.masterKey).publicKey).toBe(legacy.public.split(' ').slice(0, 2).join(' '));
    expect(targetHostKey(a.paths.targetKeys, 6, a.masterKey).publicKey).not.toBe(legacy.public.split(' ').slice(0, 2).join(' '));
  });

  it('the derived key is a valid OpenSSH Ed25519 key: ssh-keygen reads it, it signs, and the same input gives the same bytes', () => {
    const master = Buffer.alloc(32, 7);
    const pem = derivedTargetKey(master, 3);
    expect(derivedTargetKey(master, 3).equals(pem)).toBe(true);
    const key = ssh2.utils.parseKey(pem);
    if (key instanceof Error || Array.isArray(key)) throw new Error('unreadable key');
    expect(key.verify(Buffer.from('x'), key.sign(Buffer.from('x')))).toBe(true);
    const file = path.join(tempDir(), 'k');
    fs.writeFileSync(file, pem, { mode: 0o600 });
    const pub = execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim();
    expect(pub.split(' ').slice(0, 2).join(' ')).toBe(`${key.type} ${key.getPublicSSH().toString('base64')}`);
    expect(() => derivedTargetKey(Buffer.alloc(8), 3)).toThrow(/too short/);
  });
});
