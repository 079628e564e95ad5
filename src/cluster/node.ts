import fs from 'node:fs';
import os from 'node:os';
import type { Config } from '../config/schema.js';
import type { LiveSession } from '../proxy/connection.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { NodeRecord, Store } from '../store/types.js';
import { nodeIncarnationPath } from './lock.js';
import { reapDeadNodes } from './reap.js';
import { StoreHealth } from './health.js';

/**
 * This process as one node of a cluster on a shared store: it holds its name (store.nodes.claim
 * refuses a name another live process holds), beats its heartbeat, reaps nodes whose heartbeat
 * stopped, and watches the store's health (cluster/health.ts): when the store cannot be reached,
 * new logins are refused and, after node.storeLossGrace, live sessions end (`store_unreachable`)
 * because revocation can no longer be observed.
 */
export interface NodeDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  config: Config;
  name: string;
  /** Where recordings of a dead node can be found (a shared data directory). */
  recordings: string;
  sign: (hash: string) => string;
  live: () => Iterable<LiveSession>;
  addresses?: () => string[];
  /** Only nodes that run the cluster's housekeeping reap (one per machine is enough; all may). */
  reaper?: boolean;
  /**
   * The data directory whose serve lock for `name` this process holds (cluster/lock.ts); absent
   * for a worker, whose primary holds the lock of the node's name.
   */
  lockDir?: string;
}

export interface ClusterNode {
  readonly name: string;
  /** This process's current generation of the name (a new one after being reaped and claiming again). */
  incarnation(): string;
  /** Stop reaping other nodes (a worker retiring after SIGHUP hands housekeeping to a fresh one). */
  stopReaping(): void;
  readonly health: StoreHealth;
  /** Non-null while new logins must be refused: the line the operator is shown. */
  refusal(): string | null;
  stop(): Promise<void>;
}

/** This server's node name: node.name (env GATEHOUSE_NODE_NAME, config/load.ts), else the host name. */
export function nodeName(config: Config): string {
  return config.node.name ?? os.hostname();
}

/** How often a node beats: a few times within deadAfter, at most every 5 s. */
export function heartbeatEvery(deadAfterMs: number): number {
  return Math.max(250, Math.min(5_000, Math.floor(deadAfterMs / 4)));
}

export const STORE_LOST_MESSAGE = 'gatehouse cannot reach its database right now; new logins are refused. Try again in a minute.';

/**
 * Claim a node name for this process; each claim is a new generation (incarnation) of the name. A
 * holder whose heartbeat is fresh is refused, unless this process holds the serve lock of the name in
 * `lockDir` and the holder's incarnation is the one noted there (a restart right after a crash or
 * kill -9, when the heartbeat is still young): the lock proves that process gone. Host name and PID
 * prove nothing (two machines may share both), so they no longer let a name be taken.
 *
 * The lock proves only that no process on THIS data directory holds the name: a copy of the
 * directory (a cloned VM, a restored backup) carries the same file while the original node runs
 * elsewhere. So the proof counts only once the row's heartbeat has not moved for one heartbeat
 * interval (a live node beats within it); a restart after a crash waits at most that long.
 */
export async function claimName(
  store: Store, name: string, staleMs: number, addresses: string[] = [], lockDir?: string,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<NodeRecord> {
  const me = { name, pid: process.pid, host: os.hostname(), addresses };
  const file = lockDir === undefined ? null : nodeIncarnationPath(lockDir, name);
  let previous: string | undefined;
  try {
    previous = file ? fs.readFileSync(file, 'utf8').trim() : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (previous !== undefined) previous = await stillSilent(store, name, previous, staleMs, sleep);
  if (previous === undefined) await silentUntilStale(store, name, staleMs, sleep);
  const rec = await store.nodes.claim(me, staleMs, previous);
  if (file) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${rec.incarnation}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  return rec;
}

/**
 * The data directory's proof (`previous`), kept only when the row it names has a fresh heartbeat
 * that then stays still for one heartbeat interval (on the store's clock); dropped when it moves.
 * A stale, stopped or other-generation row needs no proof (claim decides), so nothing waits.
 */
async function stillSilent(store: Store, name: string, previous: string, staleMs: number, sleep: (ms: number) => Promise<void>): Promise<string | undefined> {
  const every = heartbeatEvery(staleMs);
  const row = (await store.nodes.list()).find((n) => n.name === name);
  if (!row || row.incarnation !== previous || row.stoppedAt !== null) return previous;
  const age = (await store.nodes.now()) - row.heartbeatAt;
  if (age >= staleMs) return previous;
  // Silent for a whole interval plus a margin (a beat's own store round trip) before it counts.
  await sleep(Math.max(0, every - age) + Math.min(1_000, every));
  const again = (await store.nodes.list()).find((n) => n.name === name);
  return again && again.incarnation === previous && again.heartbeatAt === row.heartbeatAt ? previous : undefined;
}

/**
 * No proof: a holder with a young heartbeat may be alive, or may be a row that will never beat again
 * (a restored backup's copy of its own node, a crash with the lock file lost). Watch it: once it has
 * not moved for deadAfter it is stale and the claim takes it; a heartbeat that moves means a live
 * holder, and the claim refuses. At most deadAfter (30 s by default) at start, only in those cases.
 */
async function silentUntilStale(store: Store, name: string, staleMs: number, sleep: (ms: number) => Promise<void>): Promise<void> {
  const every = heartbeatEvery(staleMs);
  const first = (await store.nodes.list()).find((n) => n.name === name);
  if (!first || first.stoppedAt !== null || first.reapedAt !== null) return;
  for (let i = 0; i < Math.ceil(staleMs / every) + 2; i++) {
    const age = (await store.nodes.now()) - first.heartbeatAt;
    if (age >= staleMs) return;
    await sleep(Math.min(every, staleMs - age + 100));
    const now = (await store.nodes.list()).find((n) => n.name === name);
    if (!now || now.incarnation !== first.incarnation || now.heartbeatAt !== first.heartbeatAt) return;
  }
}

export async function joinCluster(deps: NodeDeps): Promise<ClusterNode> {
  const { store, clock, log, config, name } = deps;
  const deadAfter = config.node.deadAfter;
  let incarnation = (await claimName(store, name, deadAfter, deps.addresses?.() ?? [], deps.lockDir)).incarnation;
  let reaper = deps.reaper !== false;
  const health = new StoreHealth({
    clock, graceMs: config.node.storeLossGrace, log,
    expire: () => {
      // Revocation cannot be observed any more: what is live ends rather than run unchecked.
      for (const s of [...deps.live()]) s.end('store_unreachable', 'session ended: the bastion lost its database and cannot check access any more');
    },
  });
  let stopped = false;
  let beating: Promise<void> | null = null;
  const beat = async () => {
    const ok = await store.nodes.heartbeat(name, incarnation, deps.addresses?.());
    if (!ok) {
      // Another node took this one for dead (a pause longer than deadAfter) and closed its sessions
      // in the store: they cannot go on as if nothing happened. End them, and claim the name again.
      const live = [...deps.live()];
      log.error({ node: name, sessions: live.length }, 'this node was taken for dead by another node (heartbeat too late); ending its live sessions and registering again');
      for (const s of live) s.end('node_reaped', 'session ended: this bastion node was taken for dead by the cluster');
      // A new generation: a reaper still closing the old one's sessions cannot touch the new ones.
      incarnation = (await claimName(store, name, deadAfter, deps.addresses?.() ?? [], deps.lockDir)).incarnation;
    }
    if (reaper) {
      await reapDeadNodes({ store, me: name, deadAfterMs: deadAfter, root: deps.recordings, sign: deps.sign, log });
    }
  };
  const timer = setInterval(() => {
    if (beating || stopped) return;
    beating = withTimeout(beat(), Math.max(2_000, heartbeatEvery(deadAfter)))
      .then(() => health.ok())
      .catch((err: unknown) => health.failed(err))
      .finally(() => { beating = null; });
  }, heartbeatEvery(deadAfter));
  timer.unref();
  return {
    name,
    health,
    incarnation: () => incarnation,
    stopReaping: () => { reaper = false; },
    refusal: () => (health.lost() ? STORE_LOST_MESSAGE : null),
    async stop() {
      stopped = true;
      clearInterval(timer);
      health.stop();
      await beating;
      await store.nodes.leave(name, incarnation).catch((err: unknown) => log.warn({ err }, 'could not mark this node stopped'));
    },
  };
}

/** A store that hangs (a network cut) counts as lost, not as slow for ever. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`the store did not answer within ${ms} ms`)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
