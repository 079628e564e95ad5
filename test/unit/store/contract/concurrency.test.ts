import { expect, it } from 'vitest';
import { draft } from '../../../../src/audit/events.js';
import { ManualClock } from '../../../../src/shared/clock.js';
import { admin, T0 } from '../../../helpers/store.js';
import { forEachBackend } from '../backends.js';

/**
 * Two "nodes": two store objects on the same data (for PostgreSQL two pools, as two servers would
 * have), racing on everything that must be serialized across nodes. What an attacker tries first:
 * the same TOTP code or security-key counter sent to two nodes at once, and failures spread over
 * nodes to dodge the lockout.
 */
forEachBackend('two nodes on one store', (make) => {
  it('200 audit events appended by each node at once: one chain, ids 1..400, verify intact', async () => {
    const a = await make();
    const b = { store: await a.reopen() };
    const append = (store: typeof a.store, node: string) => Promise.all(Array.from({ length: 200 }, (_, i) =>
      store.audit.append(draft('session.start', 'system', { session: `${node}-${i}`, user: 'alice', source: '10.0.0.1', key: 'SHA256:k' }))));
    const [ra, rb] = await Promise.all([append(a.store, 'a'), append(b.store, 'b')]);
    const ids = [...ra, ...rb].map((r) => r.id).sort((x, y) => x - y);
    expect(ids).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect(await a.store.audit.verify()).toMatchObject({ ok: true, rows: 400 });
    expect((await b.store.audit.head()).count).toBe(400);
    const all = await a.store.audit.after(0, 1000);
    for (let i = 1; i < all.length; i++) expect(all[i]!.prevHash).toBe(all[i - 1]!.hash);
    // The session index is filled on every backend.
    expect((await b.store.audit.list({ session: 'b-7' })).map((e) => e.data.session)).toEqual(['b-7']);
  });

  it('the same TOTP step claimed on two nodes at once: exactly one wins, every time', async () => {
    const a = await make();
    const b = { store: await a.reopen() };
    await a.store.users.add('alice', ['operator'], admin);
    await a.store.totp.enroll('alice', () => Buffer.from('sealed'), false, admin);
    const uid = (await a.store.users.get('alice'))!.id;
    for (let step = 100; step < 130; step++) {
      const wins = await Promise.all([a.store.totp.claimStep(uid, step), b.store.totp.claimStep(uid, step), a.store.totp.claimStep(uid, step), b.store.totp.claimStep(uid, step)]);
      expect(wins.filter(Boolean), `step ${step}`).toHaveLength(1);
    }
    // An older step never again.
    expect(await b.store.totp.claimStep(uid, 120)).toBe(false);
    expect((await a.store.totp.get('alice'))!.lastStep).toBe(129);
  });

  it('a security key counter and a WebAuthn counter replayed on two nodes at once: one acceptance', async () => {
    const a = await make();
    const b = { store: await a.reopen() };
    await a.store.users.add('alice', ['operator'], admin);
    await a.store.keys.add('alice', [{ fingerprint: 'SHA256:sk', type: 'sk-ssh-ed25519@openssh.com', bits: 256, publicKey: 'sk-ssh-ed25519@openssh.com AAAA', comment: '' }], admin);
    await a.store.webauthn.add('alice', { credentialId: 'cred1', publicKey: Buffer.from([1, 2, 3]), counter: 0, transports: ['usb'] }, admin);
    for (let counter = 1; counter <= 20; counter++) {
      const sk = await Promise.all([a.store.keys.claimCounter('SHA256:sk', counter), b.store.keys.claimCounter('SHA256:sk', counter), b.store.keys.claimCounter('SHA256:sk', counter)]);
      expect(sk.filter(Boolean), `sk ${counter}`).toHaveLength(1);
      const wa = await Promise.all([a.store.webauthn.claimCounter('cred1', counter, T0), b.store.webauthn.claimCounter('cred1', counter, T0), a.store.webauthn.claimCounter('cred1', counter, T0)]);
      expect(wa.filter(Boolean), `webauthn ${counter}`).toHaveLength(1);
    }
    expect((await b.store.keys.byFingerprint('SHA256:sk'))!.skCounter).toBe(20);
    expect((await b.store.webauthn.byCredentialId('cred1'))!.counter).toBe(20);
  });

  it('failures spread over two nodes lock the user exactly at the limit, once', async () => {
    const a = await make();
    const b = { store: await a.reopen() };
    await a.store.users.add('alice', ['operator'], admin);
    const uid = (await a.store.users.get('alice'))!.id;
    const policy = { failures: 5, windowMs: 60_000, durationMs: 300_000 };
    // Ten failures at once, five per node: the fifth counted locks; the rest find the lock.
    const locks = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).store.lockout.recordFailure(uid, T0 + i, policy)));
    expect(locks.filter((l) => l !== null)).toHaveLength(1);
    expect(await b.store.lockout.lockedUntil(uid, T0 + 20)).not.toBeNull();
  });

  it('recordings closed on two nodes at once form one chain (seq 1..n, each prev the last hash)', async () => {
    const a = await make();
    const b = { store: await a.reopen() };
    const n = 30;
    for (let i = 0; i < n; i++) {
      await a.store.sessions.open({ id: `s${i}`, user: 'alice', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell', node: i % 2 ? 'a' : 'b' });
      await a.store.sessions.openChannel({ sessionId: `s${i}`, channel: 0, kind: 'shell', command: null, pty: true, host: 'web1', login: 'root' });
      await a.store.recordings.open({ sessionId: `s${i}`, channel: 0, path: `s${i}-0.cast`, kind: 'terminal' });
    }
    await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 ? a : b).store.recordings.close(
      { sessionId: `s${i}`, channel: 0, state: 'closed', truncated: false, size: i, sha256: 'ab'.repeat(32) }, (h) => `sig:${h}`)));
    const chain = (await b.store.recordings.list()).filter((r) => r.seq !== null);
    expect(chain.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    for (let i = 1; i < chain.length; i++) expect(chain[i]!.prevHash).toBe(chain[i - 1]!.chainHash);
    expect((await a.store.recordings.head()).count).toBe(n);
  });

  it('a change on one node bumps the policy version the other reads', async () => {
    const a = await make();
    const b = { store: await a.reopen({ clock: new ManualClock(T0) }) };
    const v0 = await b.store.policy.version();
    await a.store.users.add('alice', ['operator'], admin);
    const v1 = await b.store.policy.version();
    expect(v1).toBeGreaterThan(v0);
    // A TOTP claim (every login) is not a policy change.
    await a.store.totp.enroll('alice', () => Buffer.from('s'), false, admin);
    const v2 = await b.store.policy.version();
    await b.store.totp.claimStep((await a.store.users.get('alice'))!.id, 5);
    expect(await a.store.policy.version()).toBe(v2);
  });
});
