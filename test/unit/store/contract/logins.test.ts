import { expect, it } from 'vitest';
import type { Store } from '../../../../src/store/types.js';
import { admin } from '../../../helpers/store.js';
import { forEachBackend, type Made } from '../backends.js';

/**
 * Login state shared by every worker and node (Store['logins']): auth.mfaGrace, the seats at the
 * TOTP prompt and sessions.maxPerUser. "Two processes" are two store objects on the same data (for
 * PostgreSQL two pools). What an attacker tries first: the last seat asked for on two nodes at once,
 * and a grace that outlives a revocation made by the CLI in another process.
 */
const key = (fingerprint: string) => ({ fingerprint, type: 'ssh-ed25519', bits: 256, publicKey: `ssh-ed25519 ${fingerprint}`, comment: '' });
const DEAD_AFTER = 30_000;

async function alice(m: Made): Promise<{ enrolment: number; other: Store }> {
  await m.store.users.add('alice', ['operator'], admin);
  await m.store.keys.add('alice', [key('SHA256:k1'), key('SHA256:k2')], admin);
  await m.store.totp.enroll('alice', () => Buffer.from('sealed'), false, admin);
  // The other process's clock runs with this one's (a re-enrolment gets a new enrolment time).
  return { enrolment: (await m.store.totp.get('alice'))!.createdAt, other: await m.reopen({ clock: m.clock }) };
}

const session = (id: string, node = 'n1', user = 'alice') => ({ id, user, keyFingerprint: 'SHA256:k1', sourceAddr: '10.0.0.1', mode: 'command', node });
const seat = (limit: number) => ({ limit, deadAfterMs: DEAD_AFTER });

forEachBackend('shared login state', (make) => {
  it('mfaGrace: trusted on another process, for that user, key, address and enrolment, until it expires', async () => {
    const m = await make();
    const { enrolment: e, other } = await alice(m);
    const g = { user: 'alice', fingerprint: 'SHA256:k1', address: '10.0.0.1' };
    await m.store.logins.trust({ ...g, enrolment: e, expiresAt: m.clock.now() + 60_000 });
    expect(await other.logins.trusted({ ...g, enrolment: e }, m.clock.now())).toBe(true);
    expect(await other.logins.trusted({ ...g, fingerprint: 'SHA256:k2', enrolment: e }, m.clock.now())).toBe(false);
    expect(await other.logins.trusted({ ...g, address: '10.0.0.2', enrolment: e }, m.clock.now())).toBe(false);
    expect(await other.logins.trusted({ ...g, enrolment: e + 1 }, m.clock.now())).toBe(false);
    expect(await other.logins.trusted({ ...g, enrolment: e }, m.clock.now() + 60_000)).toBe(false);
    // A trust for an enrolment that is not the current one, or a key that is not the user's, is not stored.
    await m.store.logins.trust({ ...g, address: '10.0.0.9', enrolment: e - 1, expiresAt: m.clock.now() + 60_000 });
    await m.store.users.add('mallory', ['operator'], admin);
    await m.store.logins.trust({ ...g, user: 'mallory', enrolment: e, expiresAt: m.clock.now() + 60_000 });
    expect(Number((await m.sql<{ n: number }>('SELECT count(*) AS n FROM mfa_grace'))[0]!.n)).toBe(1);
  });

  it('mfaGrace ends when another process disables the user (and stays ended after enable), removes the key, resets or re-enrols TOTP, removes the user', async () => {
    const m = await make();
    const { enrolment: e0, other } = await alice(m);
    const g1 = { user: 'alice', fingerprint: 'SHA256:k1', address: '10.0.0.1' };
    const g2 = { ...g1, fingerprint: 'SHA256:k2' };
    const now = () => m.clock.now();
    const trustBoth = async (e: number) => {
      await m.store.logins.trust({ ...g1, enrolment: e, expiresAt: now() + 60_000 });
      await m.store.logins.trust({ ...g2, enrolment: e, expiresAt: now() + 60_000 });
      expect([await m.store.logins.trusted({ ...g1, enrolment: e }, now()), await m.store.logins.trusted({ ...g2, enrolment: e }, now())]).toEqual([true, true]);
    };
    const rows = async () => Number((await m.sql<{ n: number }>('SELECT count(*) AS n FROM mfa_grace'))[0]!.n);

    await trustBoth(e0);
    await other.users.setDisabled('alice', true, 'left', admin);
    await other.users.setDisabled('alice', false, '', admin);
    expect(await m.store.logins.trusted({ ...g1, enrolment: e0 }, now())).toBe(false);
    expect(await rows()).toBe(0);

    await trustBoth(e0);
    await other.keys.remove('alice', 'SHA256:k1', admin);
    expect([await m.store.logins.trusted({ ...g1, enrolment: e0 }, now()), await m.store.logins.trusted({ ...g2, enrolment: e0 }, now())]).toEqual([false, true]);
    expect(await rows()).toBe(1);

    await other.totp.reset('alice', admin);
    expect(await rows()).toBe(0);
    m.clock.advance(1_000);
    await other.totp.enroll('alice', () => Buffer.from('sealed2'), false, admin);
    const e1 = (await m.store.totp.get('alice'))!.createdAt;
    expect(e1).not.toBe(e0);
    await m.store.logins.trust({ ...g2, enrolment: e1, expiresAt: now() + 60_000 });
    expect(await m.store.logins.trusted({ ...g2, enrolment: e1 }, now())).toBe(true);
    await other.users.remove('alice', admin);
    expect(await rows()).toBe(0);
  });

  it('mfaGrace: forget() ends a user, or one key of theirs', async () => {
    const m = await make();
    const { enrolment: e, other } = await alice(m);
    const g1 = { user: 'alice', fingerprint: 'SHA256:k1', address: 'a' };
    const g2 = { ...g1, fingerprint: 'SHA256:k2' };
    for (const g of [g1, g2]) await m.store.logins.trust({ ...g, enrolment: e, expiresAt: m.clock.now() + 60_000 });
    await other.logins.forget('alice', 'SHA256:k1');
    expect([await m.store.logins.trusted({ ...g1, enrolment: e }, m.clock.now()), await m.store.logins.trusted({ ...g2, enrolment: e }, m.clock.now())]).toEqual([false, true]);
    await other.logins.forget('alice');
    expect(await m.store.logins.trusted({ ...g2, enrolment: e }, m.clock.now())).toBe(false);
  });

  it('TOTP-prompt seats: one cap over every process, idempotent per seat, freed by leave and by age', async () => {
    const m = await make();
    const other = await m.reopen();
    const now = m.clock.now();
    expect(await m.store.logins.enterPending('alice', 'a', now, 2, 30_000)).toBe(true);
    expect(await other.logins.enterPending('alice', 'b', now, 2, 30_000)).toBe(true);
    expect(await other.logins.enterPending('alice', 'a', now, 2, 30_000)).toBe(true);
    expect(await m.store.logins.enterPending('alice', 'c', now, 2, 30_000)).toBe(false);
    expect(await m.store.logins.enterPending('bob', 'c', now, 2, 30_000)).toBe(true);
    expect(await other.logins.countPending('alice', now, 30_000)).toBe(2);
    await other.logins.leavePending('a');
    expect(await m.store.logins.enterPending('alice', 'd', now, 2, 30_000)).toBe(true);
    // A node killed with connections at the prompt: its seats are free after the login grace time.
    expect(await m.store.logins.enterPending('alice', 'e', now + 29_999, 2, 30_000)).toBe(false);
    expect(await m.store.logins.enterPending('alice', 'e', now + 30_000, 2, 30_000)).toBe(true);
  });

  it('TOTP-prompt seats: 40 connections on two processes race for 3 seats: exactly 3 get one', async () => {
    const m = await make();
    const other = await m.reopen();
    const now = m.clock.now();
    for (let round = 0; round < 5; round++) {
      const user = `u${round}`;
      const wins = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? other : m.store).logins.enterPending(user, `${user}-${i}`, now, 3, 30_000)));
      expect(wins.filter(Boolean), `round ${round}`).toHaveLength(3);
      expect(await m.store.logins.countPending(user, now, 30_000)).toBe(3);
    }
  });

  it('maxPerUser: the seat count and the row in one step; an ended session frees its seat', async () => {
    const m = await make();
    const other = await m.reopen();
    await m.store.nodes.claim({ name: 'n1', pid: 1, host: 'h', addresses: [] }, DEAD_AFTER);
    expect(await m.store.logins.openSession(session('s1'), seat(2))).toEqual({ opened: true });
    expect(await other.logins.openSession(session('s2'), seat(2))).toEqual({ opened: true });
    expect(await other.logins.openSession(session('s3'), seat(2))).toEqual({ opened: false, live: 2 });
    expect(await m.store.sessions.get('s3')).toBeNull();
    expect(await m.store.logins.openSession(session('b1', 'n1', 'bob'), seat(2))).toEqual({ opened: true });
    const row = (await m.store.sessions.get('s1'))!;
    expect(row).toMatchObject({ user: 'alice', keyFingerprint: 'SHA256:k1', sourceAddr: '10.0.0.1', node: 'n1', endedAt: null });
    await m.store.sessions.close('s1', 'client_closed', 0, 0);
    expect(await other.logins.countLive('alice', DEAD_AFTER)).toBe(1);
    expect(await other.logins.openSession(session('s3'), seat(2))).toEqual({ opened: true });
  });

  it('maxPerUser counts only live nodes: not a stopped, reaped or silent node; a session naming no known node counts', async () => {
    const m = await make();
    const inc = new Map<string, string>();
    for (const name of ['live', 'stopped', 'reaped', 'silent']) inc.set(name, (await m.store.nodes.claim({ name, pid: 1, host: 'h', addresses: [] }, DEAD_AFTER)).incarnation);
    for (const name of ['live', 'stopped', 'reaped', 'silent', 'unknown']) expect(await m.store.logins.openSession(session(`s-${name}`, name), seat(10))).toEqual({ opened: true });
    expect(await m.store.logins.countLive('alice', DEAD_AFTER)).toBe(5);
    await m.store.nodes.leave('stopped', inc.get('stopped')!);
    // Heartbeats older than deadAfter (on the clock the store stamps them with): taken for dead, and
    // 'silent' not counted even before a reaper comes.
    await m.sql('UPDATE nodes SET heartbeat_at = heartbeat_at - $1 WHERE name IN ($2, $3)', [DEAD_AFTER * 3, 'reaped', 'silent']);
    expect(await m.store.nodes.reap('reaped', DEAD_AFTER, 'live')).toBe(inc.get('reaped'));
    expect(await m.store.logins.countLive('alice', DEAD_AFTER)).toBe(2);
    expect(await m.store.logins.openSession(session('again', 'live'), seat(3))).toEqual({ opened: true });
    expect(await m.store.logins.openSession(session('more', 'live'), seat(3))).toEqual({ opened: false, live: 3 });
  });

  it('maxPerUser race: 30 connections on two processes claim the last seat at once: exactly one wins, every round', async () => {
    const m = await make();
    const other = await m.reopen();
    await m.store.nodes.claim({ name: 'n1', pid: 1, host: 'h', addresses: [] }, DEAD_AFTER);
    await m.store.nodes.claim({ name: 'n2', pid: 2, host: 'h', addresses: [] }, DEAD_AFTER);
    expect(await m.store.logins.openSession(session('first', 'n1'), seat(2))).toEqual({ opened: true });
    for (let round = 0; round < 3; round++) {
      const user = `u${round}`;
      if (round > 0) expect(await m.store.logins.openSession(session(`${user}-first`, 'n1', user), seat(2))).toEqual({ opened: true });
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) =>
        (i % 2 ? other : m.store).logins.openSession(session(`${user}-${i}`, i % 2 ? 'n2' : 'n1', round === 0 ? 'alice' : user), seat(2))));
      expect(results.filter((r) => r.opened), `round ${round}`).toHaveLength(1);
      expect(await m.store.logins.countLive(round === 0 ? 'alice' : user, DEAD_AFTER)).toBe(2);
    }
  });
});
