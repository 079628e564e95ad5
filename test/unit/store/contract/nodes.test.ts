import { expect, it } from 'vitest';
import { reapDeadNodes } from '../../../../src/cluster/reap.js';
import { ManualClock } from '../../../../src/shared/clock.js';
import { createLogger } from '../../../../src/shared/logger.js';
import type { Store } from '../../../../src/store/types.js';
import { tempDir } from '../../../helpers/cli.js';
import { forEachBackend, type Made } from '../backends.js';

/**
 * The nodes table as the second attacker review left it to mend: identity by incarnation (not host
 * name + PID), a reap that touches only the generation it reaped and is finished by a later sweep
 * when its reaper died half-way, staleness on the database's clock (PostgreSQL), recordings closed
 * once, and worker rows that do not pile up.
 */
const log = createLogger({ level: 'silent' });
const me = { pid: 1, host: 'bastion', addresses: [] as string[] };
const open = (store: Store, id: string, node: string) => store.sessions.open({ id, user: 'alice', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'command', node });
/** A node silent for two minutes, by the store's own clock (no clock of a test process involved). */
const silence = (m: Made, name: string) => m.sql('UPDATE nodes SET heartbeat_at = heartbeat_at - 120000 WHERE name = $1', [name]);
const live = async (store: Store, id: string) => (await store.sessions.get(id))!.endedAt === null;

forEachBackend('store.nodes generations', (make, backend) => {
  it('two machines with the same host name, PID and node name: the second is refused while the first beats (identity is the incarnation)', async () => {
    const m = await make();
    const first = await m.store.nodes.claim({ name: 'bastion', ...me }, 30_000);
    // Containers: PID 1 on both, the same host name. Host + PID used to count as "the same process".
    await expect(m.store.nodes.claim({ name: 'bastion', ...me }, 30_000)).rejects.toThrow(/another gatehouse server named "bastion"/);
    expect(await m.store.nodes.heartbeat('bastion', first.incarnation)).toBe(true);
    // Proof that the holder is gone (its incarnation, from the data directory whose lock we hold) takes it at once.
    await expect(m.store.nodes.claim({ name: 'bastion', ...me }, 30_000, 'some-other-generation')).rejects.toThrow(/named "bastion"/);
    const second = await m.store.nodes.claim({ name: 'bastion', ...me }, 30_000, first.incarnation);
    expect(second.incarnation).not.toBe(first.incarnation);
    expect(second.incarnation.length).toBeGreaterThanOrEqual(16);
    // The old generation's heartbeat and leave no longer touch the row.
    expect(await m.store.nodes.heartbeat('bastion', first.incarnation)).toBe(false);
    await m.store.nodes.leave('bastion', first.incarnation);
    expect((await m.store.nodes.list())[0]).toMatchObject({ incarnation: second.incarnation, stoppedAt: null });
  });

  it('a paused node that comes back during a reap keeps its new sessions: the reap closes only the generation it reaped', async () => {
    const m = await make();
    const b = await m.reopen();
    const gen1 = await m.store.nodes.claim({ name: 'a', ...me }, 30_000);
    await open(m.store, 's-old', 'a');
    await silence(m, 'a');
    // B takes A for dead…
    expect(await b.nodes.reap('a', 30_000, 'b')).toBe(gen1.incarnation);
    expect(await b.nodes.reap('a', 30_000, 'c')).toBeNull();
    // …A wakes before B closes anything: its heartbeat fails, it claims the name again, serves a new session.
    expect(await m.store.nodes.heartbeat('a', gen1.incarnation)).toBe(false);
    const gen2 = await m.store.nodes.claim({ name: 'a', ...me }, 30_000);
    await open(m.store, 's-new', 'a');
    expect(await b.nodes.orphans('a', gen1.incarnation)).toEqual(['s-old']);
    // B's closing step now runs: the old generation only.
    expect(await b.nodes.finishReap('a', gen1.incarnation, 'b', 0)).toEqual(['s-old']);
    expect(await live(m.store, 's-old')).toBe(false);
    expect((await m.store.sessions.get('s-old'))!.endReason).toBe('interrupted');
    expect(await live(m.store, 's-new')).toBe(true);
    expect(await m.store.nodes.heartbeat('a', gen2.incarnation)).toBe(true);
    expect((await m.store.audit.list({ type: 'node.reaped' })).map((e) => e.data.sessions)).toEqual([['s-old']]);
    // Finished: nothing more, no second audit row.
    expect(await b.nodes.finishReap('a', gen1.incarnation, 'b', 0)).toBeNull();
    expect(await m.store.audit.list({ type: 'node.reaped' })).toHaveLength(1);
  });

  it('a reaper that dies between reap and closing: a later sweep (of any reaper) finishes it, once', async () => {
    const m = await make();
    const root = tempDir();
    const gen = await m.store.nodes.claim({ name: 'dead', ...me }, 30_000);
    await m.store.nodes.claim({ name: 'r2', ...me }, 30_000);
    await open(m.store, 's1', 'dead');
    await silence(m, 'dead');
    // Reaper r1 marks it reaped, then crashes (kill -9) before closing its sessions.
    expect(await m.store.nodes.reap('dead', 30_000, 'r1')).toBe(gen.incarnation);
    // Right away, a second reaper leaves the reap to its owner (it may still be working on it).
    expect(await reapDeadNodes({ store: m.store, me: 'r2', deadAfterMs: 30_000, root, sign: () => 'sig', log })).toEqual([]);
    expect(await live(m.store, 's1')).toBe(true);
    // Once the reap is older than deadAfter, it is taken up again.
    await m.sql('UPDATE nodes SET reaped_at = reaped_at - 120000 WHERE name = $1', ['dead']);
    const other = await m.reopen();
    const [x, y] = await Promise.all([
      reapDeadNodes({ store: m.store, me: 'r2', deadAfterMs: 30_000, root, sign: () => 'sig', log }),
      reapDeadNodes({ store: other, me: 'r3', deadAfterMs: 30_000, root, sign: () => 'sig', log }),
    ]);
    expect([...x, ...y]).toEqual(['dead']);
    expect((await m.store.sessions.get('s1'))!.endReason).toBe('interrupted');
    const ev = await m.store.audit.list({ type: 'node.reaped' });
    expect(ev).toHaveLength(1);
    expect(ev[0]!.data).toMatchObject({ node: 'dead', by: 'r1', sessions: ['s1'] });
    expect((await m.store.nodes.list()).find((n) => n.name === 'dead')!.reapDoneAt).not.toBeNull();
    expect(await reapDeadNodes({ store: m.store, me: 'r2', deadAfterMs: 30_000, root, sign: () => 'sig', log })).toEqual([]);
  });

  it(backend === 'postgres'
    ? 'heartbeats and staleness use the database clock: a node whose clock is an hour behind is not taken for dead'
    : 'SQLite keeps the injected clock (one machine or one shared volume): staleness is measured on it', async () => {
    const m = await make();
    const behind = await m.reopen({ clock: new ManualClock(m.clock.now() - 3_600_000) });
    const ahead = await m.reopen({ clock: new ManualClock(m.clock.now() + 3_600_000) });
    const gen = await behind.nodes.claim({ name: 'slow-clock', ...me }, 30_000);
    expect(await behind.nodes.heartbeat('slow-clock', gen.incarnation)).toBe(true);
    await ahead.nodes.claim({ name: 'fast-clock', ...me }, 30_000);
    const reaped = await reapDeadNodes({ store: ahead, me: 'fast-clock', deadAfterMs: 30_000, root: tempDir(), sign: () => 'sig', log });
    if (backend === 'postgres') {
      expect(reaped).toEqual([]);
      expect(await behind.nodes.heartbeat('slow-clock', gen.incarnation)).toBe(true);
      expect(Math.abs((await ahead.nodes.now()) - Date.now())).toBeLessThan(600_000);
    } else {
      expect(reaped).toEqual(['slow-clock']);
      expect(await ahead.nodes.now()).toBe(m.clock.now() + 3_600_000);
    }
  });

  it('recordings.close on a recording closed already: the first close stands, the chain is not extended again', async () => {
    const m = await make();
    await open(m.store, 's1', 'a');
    await m.store.sessions.openChannel({ sessionId: 's1', channel: 0, kind: 'shell', command: null, pty: true, host: 'web1', login: 'deploy' });
    await m.store.recordings.open({ sessionId: 's1', channel: 0, path: 'x/s1-0.cast', kind: 'terminal' });
    const first = await m.store.recordings.close({ sessionId: 's1', channel: 0, state: 'interrupted', truncated: false, size: 10, sha256: 'a'.repeat(64) }, () => 'sig');
    // A paused node's recorder closing late, or a second reaper: another state, size and hash.
    const again = await m.store.recordings.close({ sessionId: 's1', channel: 0, state: 'closed', truncated: false, size: 99, sha256: 'b'.repeat(64) }, () => 'sig2');
    expect(again).toMatchObject({ state: 'interrupted', size: 10, seq: first.seq, chainHash: first.chainHash });
    expect((await m.store.recordings.head()).count).toBe(1);
    expect((await m.store.recordings.list('s1'))[0]).toMatchObject({ state: 'interrupted', size: 10, sha256: 'a'.repeat(64) });
  });

  it('worker rows do not pile up: stopped or reaped workers with nothing open are pruned; named nodes and busy workers stay', async () => {
    const m = await make();
    const w1 = await m.store.nodes.claim({ name: 'n/w1', ...me }, 30_000);
    const w2 = await m.store.nodes.claim({ name: 'n/w2', ...me }, 30_000);
    const w3 = await m.store.nodes.claim({ name: 'n/w3', ...me }, 30_000);
    await m.store.nodes.claim({ name: 'n/w4', ...me }, 30_000);
    const named = await m.store.nodes.claim({ name: 'n', ...me }, 30_000);
    await open(m.store, 'busy', 'n/w2');
    await m.store.nodes.leave('n/w1', w1.incarnation);
    await m.store.nodes.leave('n/w2', w2.incarnation);
    await m.store.nodes.leave('n', named.incarnation);
    await silence(m, 'n/w3');
    expect(await m.store.nodes.reap('n/w3', 30_000, 'x')).toBe(w3.incarnation);
    // Reaped but not finished: kept until its sessions are closed.
    expect(await m.store.nodes.prune()).toEqual(['n/w1']);
    await m.store.nodes.finishReap('n/w3', w3.incarnation, 'x', 0);
    expect(await m.store.nodes.prune()).toEqual(['n/w3']);
    expect((await m.store.nodes.list()).map((n) => n.name)).toEqual(['n', 'n/w2', 'n/w4']);
    await m.store.sessions.close('busy', 'exit', 0, 0);
    expect(await m.store.nodes.prune()).toEqual(['n/w2']);
    expect((await m.store.nodes.list()).map((n) => n.name)).toEqual(['n', 'n/w4']);
  });
});
