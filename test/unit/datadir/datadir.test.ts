import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { openDataDir } from '../../../src/datadir/datadir.js';
import { tempDir } from '../../helpers/cli.js';

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe('data directory', () => {
  it('creates a private directory with ed25519 keys and a master key on first use', () => {
    const dir = path.join(tempDir(), 'data');
    const d = openDataDir(dir);
    expect(d.created).toBe(true);
    expect(mode(dir)).toBe(0o700);
    for (const f of [d.paths.hostKey, d.paths.clientKey, d.paths.masterKey]) expect(mode(f)).toBe(0o600);
    const host = ssh2.utils.parseKey(d.hostKey);
    expect(host instanceof Error ? host.message : host).toMatchObject({ type: 'ssh-ed25519' });
    expect(d.clientPublicKey).toMatch(/^ssh-ed25519 AAAA\S+ gatehouse client key$/);
    expect(d.masterKey.length).toBe(32);
  });

  it('opens an existing directory without changing its keys', () => {
    const dir = path.join(tempDir(), 'data');
    const a = openDataDir(dir);
    const b = openDataDir(dir);
    expect(b.created).toBe(false);
    expect(b.hostKey).toEqual(a.hostKey);
    expect(b.masterKey).toEqual(a.masterKey);
    expect(b.clientPublicKey).toBe(a.clientPublicKey);
  });

  it('refuses a directory others can read, and says how to fix it', () => {
    const dir = path.join(tempDir(), 'data');
    openDataDir(dir);
    fs.chmodSync(dir, 0o755);
    expect(() => openDataDir(dir)).toThrow(/accessible by group or others \(mode 0755\)/);
    try { openDataDir(dir); } catch (err) { expect((err as { hint: string }).hint).toBe(`restrict it with: chmod 700 ${dir}`); }
  });

  it('refuses a key file others can read', () => {
    const dir = path.join(tempDir(), 'data');
    const d = openDataDir(dir);
    fs.chmodSync(d.paths.masterKey, 0o644);
    expect(() => openDataDir(dir)).toThrow(/master\.key is accessible by group or others/);
    fs.chmodSync(d.paths.masterKey, 0o600);
    fs.chmodSync(d.paths.hostKey, 0o640);
    expect(() => openDataDir(dir)).toThrow(/ssh_host_ed25519_key is accessible/);
  });
});
