import { beforeEach, describe, expect, it } from 'vitest';
import { Gate, type AdmitReason, type AdmitRequest, type Requester } from '../../../src/auth/admit.js';
import type { Identity } from '../../../src/auth/authenticator.js';
import { isGrant } from '../../../src/auth/policy.js';
import type { ManualClock } from '../../../src/shared/clock.js';
import type { Store } from '../../../src/store/types.js';
import { admin, tempStore, T0 } from '../../helpers/store.js';

/**
 * The one gate, on the real SQLite store: the same question asked by every path (exec, shell,
 * subsystem, jump, forward, revocation's re-check) gets the same answer and the same reason code,
 * and a refusal is audited once unless the caller only probes.
 */
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

async function world(): Promise<{ store: Store; gate: Gate; who: Requester; clock: ManualClock }> {
  const { store, clock } = tempStore();
  const user = await store.users.add('alice', ['operator'], admin);
  await store.keys.add('alice', [{ fingerprint: 'SHA256:alice', type: 'ssh-ed25519', bits: 256, publicKey: 'ssh-ed25519 AAAA', comment: '' }], admin);
  await store.totp.enroll('alice', () => Buffer.from('sealed'), false, admin);
  const totp = await store.totp.get('alice');
  await store.hosts.add({ name: 'web1', address: '10.0.0.5', port: 22, groups: [], hostKey: HOST_KEY, hostKeyFingerprint: 'SHA256:h' }, admin);
  await store.hosts.add({ name: 'db1', address: '10.0.0.6', port: 2222, groups: [], hostKey: HOST_KEY, hostKeyFingerprint: 'SHA256:h' }, admin);
  await store.grants.add({ who: { kind: 'user', name: 'alice' }, where: { kind: 'host', name: 'web1' }, logins: ['deploy'], rights: ['shell', 'exec'], until: null, reason: '' }, admin);
  await store.grants.add({ who: { kind: 'user', name: 'alice' }, where: { kind: 'host', name: 'db1' }, logins: ['pg'], rights: ['forward'], until: T0 + 60_000, reason: '' }, admin);
  const identity: Identity = { user: 'alice', userId: user.id, fingerprint: 'SHA256:alice', totpCreatedAt: totp!.createdAt };
  return { store, clock, gate: new Gate({ store }), who: { identity, source: '127.0.0.1', session: 's1' } };
}

describe('admit(): the one gate', () => {
  let store: Store;
  let gate: Gate;
  let who: Requester;
  let clock: ManualClock;
  beforeEach(async () => ({ store, gate, who, clock } = await world()));

  const table: [string, AdmitRequest, 'allow' | AdmitReason][] = [
    ['exec on a granted login', { host: 'web1', login: 'deploy', action: 'exec' }, 'allow'],
    ['shell on a granted login', { host: 'web1', login: 'deploy', action: 'shell' }, 'allow'],
    ['by unique address', { host: '10.0.0.5', login: 'deploy', action: 'exec' }, 'allow'],
    ['sftp not granted', { host: 'web1', login: 'deploy', action: 'sftp' }, 'right_not_granted'],
    ['another login', { host: 'web1', login: 'root', action: 'exec' }, 'login_not_granted'],
    ['unknown host', { host: 'nowhere', login: 'deploy', action: 'exec' }, 'unknown_host'],
    ['jump to a host with a session right', { host: 'web1', action: 'jump' }, 'allow'],
    ['jump to a host with forward only', { host: 'db1', action: 'jump' }, 'right_not_granted'],
    ['forward with any login', { host: 'db1', action: 'forward' }, 'allow'],
    ['forward without the right', { host: 'web1', action: 'forward' }, 'right_not_granted'],
    ['forward on a named login', { host: 'db1', login: 'pg', action: 'forward' }, 'allow'],
    ['a re-check with the pinned key', { host: 'web1', login: 'deploy', action: 'exec', pinnedHostKey: HOST_KEY }, 'allow'],
    ['a re-check after the key changed', { host: 'web1', login: 'deploy', action: 'exec', pinnedHostKey: 'ssh-ed25519 OTHER' }, 'host_key_changed'],
  ];
  for (const [name, req, expected] of table) {
    it(name, async () => {
      const d = await gate.admit(who, req, T0);
      if (expected === 'allow') {
        expect(d.allow).toBe(true);
        if (d.allow) expect(isGrant(d.grant)).toBe(true);
      } else {
        expect(d).toMatchObject({ allow: false, reason: expected });
      }
    });
  }

  it('a denial is audited once with the reason, the action and the session; a probe is not', async () => {
    await gate.admit(who, { host: 'web1', login: 'root', action: 'exec', kind: 'exec' }, T0);
    await gate.admit(who, { host: 'web1', login: 'root', action: 'exec' }, T0, { quiet: true });
    const rows = await store.audit.list({ type: 'access.denied', limit: 10 });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.data).toMatchObject({ user: 'alice', host: 'web1', login: 'root', action: 'exec', kind: 'exec', reason: 'login_not_granted', session: 's1', source: '127.0.0.1' });
  });

  it('grants expire at the clock the caller passes (injected, never the wall clock)', async () => {
    expect((await gate.admit(who, { host: 'db1', action: 'forward' }, T0 + 59_999)).allow).toBe(true);
    expect(await gate.admit(who, { host: 'db1', login: 'pg', action: 'forward' }, T0 + 60_000)).toMatchObject({ allow: false, reason: 'grant_expired' });
  });

  // Every identity change that revocation must act on is refused by every path with one code.
  const identityChanges: [AdmitReason, (s: Store) => Promise<unknown>][] = [
    ['user_disabled', (s) => s.users.setDisabled('alice', true, 'left', admin)],
    ['not_operator', (s) => s.users.removeRole('alice', 'operator', admin)],
    ['key_removed', (s) => s.keys.remove('alice', 'SHA256:alice', admin)],
    ['totp_reset', (s) => s.totp.reset('alice', admin)],
    ['user_removed', (s) => s.users.remove('alice', admin)],
  ];
  for (const [reason, change] of identityChanges) {
    it(`${reason}: the same code from exec, jump, forward and the identity re-check`, async () => {
      await change(store);
      const asked = [
        await gate.admit(who, { host: 'web1', login: 'deploy', action: 'exec' }, T0),
        await gate.admit(who, { host: 'web1', action: 'jump' }, T0),
        await gate.admit(who, { host: 'db1', action: 'forward' }, T0),
      ];
      expect(asked.map((d) => (d.allow ? 'allow' : d.reason))).toEqual([reason, reason, reason]);
      expect(await gate.identity(who.identity)).toMatchObject({ ok: false, reason });
      expect(await gate.reachable(who.identity, 'jump', T0)).toEqual([]);
    });
  }

  it('a user removed and added again under the same name, key and a new TOTP is not the identity that logged in', async () => {
    await store.users.remove('alice', admin);
    clock.advance(1000);
    await store.users.add('alice', ['operator'], admin);
    await store.keys.add('alice', [{ fingerprint: 'SHA256:alice', type: 'ssh-ed25519', bits: 256, publicKey: 'ssh-ed25519 AAAA', comment: '' }], admin);
    await store.totp.enroll('alice', () => Buffer.from('sealed'), false, admin);
    const d = await gate.identity(who.identity);
    expect(d.ok).toBe(false);
  });

  it('reachable() lists exactly what admit() lets through', async () => {
    const jump = await gate.reachable(who.identity, 'jump', T0);
    expect(jump.map((r) => r.host.name)).toEqual(['web1']);
    for (const host of ['web1', 'db1']) {
      const d = await gate.admit(who, { host, action: 'jump' }, T0, { quiet: true });
      expect(d.allow).toBe(jump.some((r) => r.host.name === host));
    }
  });

  it('recheck() (revocation) gives every channel the answer admit() gives, and an identity change ends them all', async () => {
    const reqs = table.map(([, req]) => req);
    const r = await gate.recheck(who.identity, reqs, T0);
    expect(r.identity.ok).toBe(true);
    const one = await Promise.all(reqs.map((req) => gate.admit(who, req, T0, { quiet: true })));
    expect(r.channels.map((d) => (d.allow ? 'allow' : d.reason))).toEqual(one.map((d) => (d.allow ? 'allow' : d.reason)));
    await store.keys.remove('alice', 'SHA256:alice', admin);
    expect(await gate.recheck(who.identity, reqs, T0)).toMatchObject({ identity: { ok: false, reason: 'key_removed' }, channels: [] });
  });
});
