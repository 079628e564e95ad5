import os from 'node:os';
import type { Config } from '../config/schema.js';
import type { LiveSession } from '../proxy/connection.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Store } from '../store/types.js';
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
}

export interface ClusterNode {
  readonly name: string;
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
 * Claim a node name for this process. A holder whose heartbeat is fresh is refused, unless it ran on
 * this host and its PID is gone (a restart right after a crash or kill -9, when its heartbeat is
 * still young): a process this host can see is dead holds nothing.
 */
export async function claimName(store: Store, name: string, staleMs: number, addresses: string[] = []): Promise<void> {
  const me = { name, pid: process.pid, host: os.hostname(), addresses };
  const row = (await store.nodes.list()).find((n) => n.name === name);
  const deadHere = row !== undefined && row.host === me.host && row.pid !== me.pid && !pidAlive(row.pid);
  await store.nodes.claim(me, deadHere ? 0 : staleMs);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function joinCluster(deps: NodeDeps): Promise<ClusterNode> {
  const { store, clock, log, config, name } = deps;
  const deadAfter = config.node.deadAfter;
  await claimName(store, name, deadAfter, deps.addresses?.() ?? []);
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
    const ok = await store.nodes.heartbeat(name, process.pid, deps.addresses?.());
    if (!ok) {
      // Another node took this one for dead (a pause longer than deadAfter) and closed its sessions
      // in the store: they cannot go on as if nothing happened. End them, and claim the name again.
      const live = [...deps.live()];
      log.error({ node: name, sessions: live.length }, 'this node was taken for dead by another node (heartbeat too late); ending its live sessions and registering again');
      for (const s of live) s.end('node_reaped', 'session ended: this bastion node was taken for dead by the cluster');
      await store.nodes.claim({ name, pid: process.pid, host: os.hostname(), addresses: deps.addresses?.() ?? [] }, deadAfter);
    }
    if (deps.reaper !== false) {
      await reapDeadNodes({ store, me: name, deadAfterMs: deadAfter, now: clock.now(), root: deps.recordings, sign: deps.sign, log });
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
    refusal: () => (health.lost() ? STORE_LOST_MESSAGE : null),
    async stop() {
      stopped = true;
      clearInterval(timer);
      health.stop();
      await beating;
      await store.nodes.leave(name, process.pid).catch((err: unknown) => log.warn({ err }, 'could not mark this node stopped'));
    },
  };
}

/** A store that hangs (a network cut) counts as lost, not as slow for ever. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`the store did not answer within ${ms} ms`)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
