import { describe, expect, it } from 'vitest';
import { Gate, type Requester } from '../../../src/auth/admit.js';
import type { Identity } from '../../../src/auth/authenticator.js';
import { readsOnly } from '../../../src/proxy/transfer.js';
import { scpCommand } from '../../../src/proxy/sftp/scp.js';
import { admin, tempStore, T0 } from '../../helpers/store.js';

/**
 * The `sftp-read` right, decided by the one gate: it admits the transfers that only read (the sftp
 * server, which then refuses writes itself; `scp -f`; `rsync --sender`) and says so in the
 * Admission; uploads need `sftp`, which includes `sftp-read`.
 */
async function world(rights: ('sftp' | 'sftp-read' | 'shell')[]) {
  const { store } = tempStore();
  const user = await store.users.add('rita', ['operator'], admin);
  await store.keys.add('rita', [{ fingerprint: 'SHA256:rita', type: 'ssh-ed25519', bits: 256, publicKey: 'ssh-ed25519 AAAA', comment: '' }], admin);
  await store.totp.enroll('rita', () => Buffer.from('sealed'), false, admin);
  const totp = await store.totp.get('rita');
  await store.hosts.add({ name: 'web1', address: '10.0.0.5', port: 22, groups: [], hostKey: null, hostKeyFingerprint: null }, admin);
  await store.grants.add({ who: { kind: 'user', name: 'rita' }, where: { kind: 'host', name: 'web1' }, logins: ['deploy'], rights, until: null, reason: '' }, admin);
  const identity: Identity = { user: 'rita', userId: user.id, fingerprint: 'SHA256:rita', totpCreatedAt: totp!.createdAt };
  const who: Requester = { identity, source: '127.0.0.1', session: 's1' };
  return { store, gate: new Gate({ store }), who };
}

describe('sftp-read in the gate', () => {
  it('a read-only-capable transfer is admitted read-only under sftp-read; an upload is refused and audited', async () => {
    const { store, gate, who } = await world(['sftp-read']);
    const read = await gate.admit(who, { host: 'web1', login: 'deploy', action: 'sftp', readOnlyOk: true }, T0);
    expect(read).toMatchObject({ allow: true, action: 'sftp-read' });
    const write = await gate.admit(who, { host: 'web1', login: 'deploy', action: 'sftp' }, T0);
    expect(write).toMatchObject({ allow: false, reason: 'right_not_granted' });
    const denied = (await store.audit.list({ type: 'access.denied' })).map((e) => e.data);
    expect(denied).toEqual([expect.objectContaining({ user: 'rita', action: 'sftp', reason: 'right_not_granted' })]);
    // A jump to the host is allowed: sftp-read is a session right.
    expect(await gate.admit(who, { host: 'web1', action: 'jump' }, T0)).toMatchObject({ allow: true });
    // Revocation re-checks a read-only channel with the right it runs under.
    expect((await gate.recheck(who.identity, [{ host: 'web1', login: 'deploy', action: 'sftp-read' }], T0)).channels[0]).toMatchObject({ allow: true });
  });

  it('sftp includes sftp-read: the same request runs read-write', async () => {
    const { gate, who } = await world(['sftp']);
    const d = await gate.admit(who, { host: 'web1', login: 'deploy', action: 'sftp', readOnlyOk: true }, T0);
    expect(d.allow && d.action).toBe(undefined);
    expect(d.allow).toBe(true);
    expect(await gate.admit(who, { host: 'web1', login: 'deploy', action: 'sftp-read' }, T0)).toMatchObject({ allow: true });
  });

  it('neither right: refused whatever the transfer', async () => {
    const { gate, who } = await world(['shell']);
    expect(await gate.admit(who, { host: 'web1', login: 'deploy', action: 'sftp', readOnlyOk: true }, T0)).toMatchObject({ allow: false, reason: 'right_not_granted' });
  });

  it('which transfers only read', () => {
    expect(readsOnly('subsystem', 'sftp')).toBe(true);
    expect(readsOnly('exec', '/usr/lib/openssh/sftp-server')).toBe(true);
    expect(readsOnly('exec', 'scp -f /etc/hosts')).toBe(true);
    expect(readsOnly('exec', 'scp -t /tmp')).toBe(false);
    // The mode is read at its position: a path named "-f" after `--` is an upload's path, not a download.
    expect(readsOnly('exec', 'scp -t -- -f')).toBe(false);
    expect(readsOnly('exec', 'scp -r -t -- -f')).toBe(false);
    expect(readsOnly('exec', 'scp -f -- -t')).toBe(true);
    expect(scpCommand('scp -t -- -f')).toEqual({ direction: 'upload', target: '-f', intoDir: false });
    expect(scpCommand('scp -r -t -- -f')).toEqual({ direction: 'upload', target: '-f', intoDir: true });
    expect(scpCommand('scp -f -- -t')).toEqual({ direction: 'download', target: '-t', intoDir: false });
    expect(readsOnly('exec', 'rsync --server --sender -logDtpre.iLsfxCIvu . /srv')).toBe(true);
    expect(readsOnly('exec', 'rsync --server --sender --remove-source-files -logDtpre.iLsfxCIvu . /srv')).toBe(false);
    expect(readsOnly('exec', 'rsync --server -logDtpre.iLsfxCIvu . /srv')).toBe(false);
    expect(readsOnly('exec', 'scp -f /x; rm -rf /')).toBe(false);
  });
});
