import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { reapDeadNodes } from '../../../src/cluster/reap.js';
import { recoverMachine } from '../../../src/cluster/primary.js';
import { StoreHealth } from '../../../src/cluster/health.js';
import { claimName, heartbeatEvery, joinCluster, nodeName, STORE_LOST_MESSAGE } from '../../../src/cluster/node.js';
import { loadConfig } from '../../../src/config/load.js';
import { nodeIncarnationPath, nodeLockPath } from '../../../src/cluster/lock.js';
import { workerCount } from '../../../src/cluster/workers.js';
import { acquireServeLock } from '../../../src/datadir/lock.js';
import { configSchema } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/shared/logger.js';
import { GatehouseError } from '../../../src/shared/errors.js';
import type { LiveSession } from '../../../src/proxy/connection.js';
import type { Store } from '../../../src/store/types.js';
import { tempDir } from '../../helpers/cli.js';
import { tempStore } from '../../helpers/store.js';

const log = createLogger({ level: 'silent' });
const me = { pid: 4242, host: 'host-a', addresses: ['127.0.0.1:2222'] };
const open = (store: Store, id: string, node: string) => store.sessions.open({ id, user: 'alice', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'command', node });

describe('store.nodes', () => {
  it('refuses a name held by a live process, names the holder, and takes over a stale or stopped one', async () => {
    const { store, clock } = tempStore();
    const first = await store.nodes.claim({ name: 'a', ...me }, 30_000);
    const second = store.nodes.claim({ name: 'a', pid: 99, host: 'host-b', addresses: [] }, 30_000);
    await expect(second).rejects.toThrow(GatehouseError);
    await expect(second).rejects.toThrow(/another gatehouse server named "a" is running \(pid 4242 on host-a/);
    // Another name on the same store is fine: nodes share it.
    await store.nodes.claim({ name: 'b', pid: 99, host: 'host-b', addresses: [] }, 30_000);

    clock.advance(31_000);
    const taken = await store.nodes.claim({ name: 'a', pid: 100, host: 'host-c', addresses: [] }, 30_000);
    expect(taken).toMatchObject({ name: 'a', pid: 100, host: 'host-c', stoppedAt: null });
    // The old holder's heartbeat no longer counts: the row is not its own.
    expect(await store.nodes.heartbeat('a', first.incarnation)).toBe(false);
    await store.nodes.leave('a', taken.incarnation);
    await store.nodes.claim({ name: 'a', ...me }, 30_000);
    expect((await store.nodes.list()).map((n) => n.name)).toEqual(['a', 'b']);
    await store.close();
  });

  it('claimName: a restart right after a crash takes the name at once only with the proof of its data directory; host name and a dead PID prove nothing', async () => {
    const { store, clock } = tempStore();
    const dir = tempDir();
    const waited: number[] = [];
    const sleep = async (ms: number) => { waited.push(ms); clock.advance(ms); };
    const crashed = await claimName(store, 'n', 30_000, [], dir, sleep);
    const file = nodeIncarnationPath(dir, 'n');
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(crashed.incarnation);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // kill -9: no leave, the heartbeat still young. The next server on this data directory holds the
    // same serve lock: the incarnation noted there is proof that process is gone, once its
    // heartbeat has stayed still for one heartbeat interval.
    const next = await claimName(store, 'n', 30_000, [], dir, sleep);
    expect(waited).toEqual([heartbeatEvery(30_000) + 1_000]);
    expect(next.incarnation).not.toBe(crashed.incarnation);
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(next.incarnation);
    // Another machine with the same host name whose PID is dead here (its own data directory, no
    // proof): refused while the holder beats. The old rule (same host, PID gone) let it take the name.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const m = await store.nodes.claim({ name: 'm', pid: Number(dead.stdout), host: os.hostname(), addresses: [] }, 30_000);
    const beating = async (ms: number) => { clock.advance(ms); expect(await store.nodes.heartbeat('m', m.incarnation)).toBe(true); };
    await expect(claimName(store, 'm', 30_000, [], tempDir(), beating)).rejects.toThrow(/another gatehouse server named "m"/);
    await expect(claimName(store, 'm', 30_000, [], undefined, beating)).rejects.toThrow(/named "m"/);
    // A data directory noting another generation proves nothing either.
    fs.writeFileSync(nodeIncarnationPath(dir, 'm'), 'not-its-generation\n');
    await expect(claimName(store, 'm', 30_000, [], dir, beating)).rejects.toThrow(/named "m"/);
    // No proof and no beat (a restored backup's own row, a crash with the lock file lost): the name
    // is taken once the row has stayed silent for deadAfter, not at once.
    waited.length = 0;
    const restored = await claimName(store, 'm', 30_000, [], tempDir(), sleep);
    expect(restored.incarnation).not.toBe(m.incarnation);
    expect(waited.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(30_000 - heartbeatEvery(30_000));
    await store.close();
  });

  it('claimName: a cloned data directory (same proof, the original node alive and beating) cannot take the name', async () => {
    const { store, clock } = tempStore();
    const original = tempDir();
    const live = await claimName(store, 'n', 30_000, [], original);
    // The clone: the original's directory copied, incarnation file included.
    const clone = tempDir();
    fs.copyFileSync(nodeIncarnationPath(original, 'n'), nodeIncarnationPath(clone, 'n'));
    // While the clone waits, the original beats as it does every interval.
    const beating = async (ms: number) => { clock.advance(ms); expect(await store.nodes.heartbeat('n', live.incarnation)).toBe(true); };
    await expect(claimName(store, 'n', 30_000, [], clone, beating)).rejects.toThrow(/another gatehouse server named "n"/);
    expect(await store.nodes.heartbeat('n', live.incarnation)).toBe(true);
    await store.close();
  });

  it('reap is atomic (one reaper of two) and never takes a node whose heartbeat is fresh', async () => {
    const { store, clock } = tempStore();
    const a = await store.nodes.claim({ name: 'a', ...me }, 30_000);
    expect(await store.nodes.reap('a', 30_000, 'b')).toBeNull();
    clock.advance(31_000);
    const both = await Promise.all([store.nodes.reap('a', 30_000, 'b'), store.nodes.reap('a', 30_000, 'c')]);
    expect(both.filter(Boolean)).toEqual([a.incarnation]);
    // The node that was only slow learns it at its next heartbeat.
    expect(await store.nodes.heartbeat('a', a.incarnation)).toBe(false);
    await store.close();
  });
});

describe('recoverMachine', () => {
  it('closes the sessions of this machine\'s silent worker rows, never those of a worker row still beating', async () => {
    const { store, clock } = tempStore();
    const host = { pid: 7, host: os.hostname(), addresses: [] };
    await store.nodes.claim({ name: 'gh/w1', ...host }, 30_000);
    await open(store, 's-old', 'gh/w1');
    clock.advance(31_000);
    // Another copy of this machine (a cloned data directory, same host name) runs gh/w2 right now.
    const beating = await store.nodes.claim({ name: 'gh/w2', ...host }, 30_000);
    await open(store, 's-live', 'gh/w2');
    clock.advance(5_000);
    await store.nodes.heartbeat('gh/w2', beating.incarnation);
    await recoverMachine(store, 'gh', tempDir(), () => 'sig', log, 30_000);
    expect((await store.sessions.get('s-old'))!.endReason).toBe('interrupted');
    expect((await store.sessions.get('s-live'))!.endedAt).toBeNull();
    expect(await store.nodes.heartbeat('gh/w2', beating.incarnation)).toBe(true);
    await store.close();
  });
});

describe('reapDeadNodes', () => {
  it('closes the sessions of a silent node as interrupted (audited), recovers its recordings found here, and leaves live nodes alone', async () => {
    const { store, clock } = tempStore();
    const root = tempDir();
    await store.nodes.claim({ name: 'dead', ...me }, 10_000);
    const alive = await store.nodes.claim({ name: 'alive', pid: 2, host: 'h', addresses: [] }, 10_000);
    const mine = await store.nodes.claim({ name: 'me', pid: 3, host: 'h', addresses: [] }, 10_000);
    await open(store, 's-dead', 'dead');
    await open(store, 's-dead-far', 'dead');
    await open(store, 's-alive', 'alive');
    for (const id of ['s-dead', 's-dead-far']) await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'shell', command: null, pty: true, host: 'web1', login: 'deploy' });
    await store.recordings.open({ sessionId: 's-dead', channel: 0, path: 'a/s-dead-0.cast', kind: 'terminal' });
    await store.recordings.open({ sessionId: 's-dead-far', channel: 0, path: 'a/s-dead-far-0.cast', kind: 'terminal' });
    fs.mkdirSync(path.join(root, 'a'));
    fs.writeFileSync(path.join(root, 'a/s-dead-0.cast'), '{"version":2}\n[0.1,"o","hi"]\n[0.2,"o","par');
    // s-dead-far's file is on the dead node's own disk (one data directory per node).

    clock.advance(5_000);
    expect(await reapDeadNodes({ store, me: 'me', deadAfterMs: 10_000, root, sign: () => 'sig', log })).toEqual([]);
    clock.advance(6_000);
    await store.nodes.heartbeat('alive', alive.incarnation);
    await store.nodes.heartbeat('me', mine.incarnation);
    expect(await reapDeadNodes({ store, me: 'me', deadAfterMs: 10_000, root, sign: () => 'sig', log })).toEqual(['dead']);
    // A second pass (or a second survivor) does nothing more.
    expect(await reapDeadNodes({ store, me: 'alive', deadAfterMs: 10_000, root, sign: () => 'sig', log })).toEqual([]);

    expect((await store.sessions.get('s-dead'))!.endReason).toBe('interrupted');
    expect((await store.sessions.get('s-dead-far'))!.endReason).toBe('interrupted');
    expect((await store.sessions.get('s-alive'))!.endedAt).toBeNull();
    const recs = await store.recordings.list();
    expect(recs.find((r) => r.sessionId === 's-dead')!.state).toBe('interrupted');
    expect(fs.readFileSync(path.join(root, 'a/s-dead-0.cast'), 'utf8')).toBe('{"version":2}\n[0.1,"o","hi"]\n');
    // Left open for the dead node's own restart, never marked failed for a file this node cannot see.
    expect(recs.find((r) => r.sessionId === 's-dead-far')!.state).toBe('open');
    const ev = (await store.audit.list({ type: 'node.reaped' }))[0]!;
    expect(ev.data).toMatchObject({ node: 'dead', by: 'me', recordings: 1 });
    expect((ev.data as { sessions: string[] }).sessions.sort()).toEqual(['s-dead', 's-dead-far']);
    await store.close();
  });
});

function fakeLive(id: string): LiveSession & { ended: string[] } {
  const ended: string[] = [];
  return {
    id, ended, identity: { user: 'alice', userId: 1, fingerprint: 'k', totpCreatedAt: null }, source: '10.0.0.1', startedAt: 0, bytesUp: 0, bytesDown: 0, lastActivity: 0,
    channels: () => [], end: (reason: string) => { ended.push(reason); }, endChannel: () => undefined, warnIdle: () => undefined,
  };
}

describe('store loss', () => {
  it('StoreHealth: refused at once, sessions end after the grace, a recovery within the grace ends nothing', () => {
    vi.useFakeTimers();
    try {
      const expire = vi.fn();
      const h = new StoreHealth({ clock: { now: () => Date.now() }, graceMs: 60_000, log, expire });
      h.failed(new Error('connection refused'));
      expect(h.lost()).toBe(true);
      vi.advanceTimersByTime(59_000);
      h.ok();
      expect(h.lost()).toBe(false);
      vi.advanceTimersByTime(10_000);
      expect(expire).not.toHaveBeenCalled();
      h.failed(new Error('again'));
      vi.advanceTimersByTime(60_000);
      expect(expire).toHaveBeenCalledTimes(1);
      h.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a node whose store fails refuses logins with a clear message and ends live sessions as store_unreachable after storeLossGrace', async () => {
    const { store, clock } = tempStore();
    const config = configSchema.parse({ node: { deadAfter: '2s', storeLossGrace: '1s' } });
    let failing = false;
    const nodes = store.nodes;
    // The store as a node sees it when the database went away: every query fails.
    const broken: Store = { ...store, nodes: { ...nodes, heartbeat: (...a) => (failing ? Promise.reject(new Error('ECONNREFUSED')) : nodes.heartbeat(...a)) } };
    const s = fakeLive('s1');
    const node = await joinCluster({ store: broken, clock, log, config, name: 'n1', recordings: tempDir(), sign: () => 'x', live: () => [s] });
    expect(node.refusal()).toBeNull();
    failing = true;
    await waitFor(() => node.refusal() !== null, 5_000);
    expect(node.refusal()).toBe(STORE_LOST_MESSAGE);
    expect(s.ended).toEqual([]);
    await waitFor(() => s.ended.length > 0, 5_000);
    expect(s.ended).toEqual(['store_unreachable']);
    failing = false;
    await waitFor(() => node.refusal() === null, 5_000);
    await node.stop();
    await store.close();
  });
});

describe('names, locks and workers', () => {
  it('one lock per node name: two names share a data directory, the same name twice is refused', () => {
    const dir = tempDir();
    const a = acquireServeLock(nodeLockPath(dir, 'node-a'), 0);
    const b = acquireServeLock(nodeLockPath(dir, 'node-b'), 0);
    expect(() => acquireServeLock(nodeLockPath(dir, 'node-a'), 0, { pid: 7, host: 'x' })).toThrow(/another gatehouse server \(pid \d+ .*node-a\.serve\.lock/);
    expect(path.basename(nodeLockPath(dir, '../x'))).toBe('%2e.%2fx.serve.lock');
    a.release();
    b.release();
  });

  it('node.name: env GATEHOUSE_NODE_NAME over the file, default the host name; a name with "/" (workers\' names) is refused', () => {
    expect(nodeName(loadConfig({}, {}))).toBe(os.hostname());
    expect(nodeName(loadConfig({}, { GATEHOUSE_NODE_NAME: 'bastion-2' }))).toBe('bastion-2');
    expect(() => loadConfig({}, { GATEHOUSE_NODE_NAME: 'a/w1' })).toThrow(/node\.name/);
  });

  it('--workers: a number, "auto" (the cores, the default), the env, then the config', () => {
    const config = configSchema.parse({});
    expect(config.node.workers).toBe('auto');
    expect(workerCount(undefined, config, {})).toBe(os.availableParallelism());
    expect(workerCount(undefined, configSchema.parse({ node: { workers: 1 } }), {})).toBe(1);
    expect(workerCount('3', config, {})).toBe(3);
    expect(workerCount(undefined, config, { GATEHOUSE_WORKERS: '2' })).toBe(2);
    expect(workerCount('auto', config, {})).toBeGreaterThanOrEqual(1);
    expect(workerCount(undefined, configSchema.parse({ node: { workers: 4 } }), {})).toBe(4);
    expect(() => workerCount('0', config, {})).toThrow(/--workers/);
    expect(() => workerCount('two', config, {})).toThrow(/--workers/);
    expect(heartbeatEvery(30_000)).toBe(5_000);
    expect(heartbeatEvery(2_000)).toBe(500);
  });
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
