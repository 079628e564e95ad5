import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import type { Config } from '../config/schema.js';
import { openDataDir } from '../datadir/datadir.js';
import { acquireServeLock } from '../datadir/lock.js';
import { recoverRecordings } from '../recorder/recovery.js';
import { signer } from '../recorder/recorder.js';
import { systemClock } from '../shared/clock.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/types.js';
import { nodeLockPath } from './lock.js';
import { claimName, heartbeatEvery, nodeName } from './node.js';
import { isToPrimary, WORKER_HOUSEKEEPING_ENV, WORKER_NAME_ENV, type ToWorker } from './workers.js';
import { throttleAnswerer } from './throttle.js';
import { AddressThrottle } from '../auth/throttle.js';

/**
 * `serve --workers N`: this process holds the node's name (its lock and its row in the store),
 * recovers what a previous run of this machine left open, and runs N workers (node:cluster). It
 * accepts no connection itself: Node's cluster module keeps the listening sockets (SSH and web) in
 * this process and hands each accepted connection to a worker in turn.
 *
 *   worker crash  its sessions are closed as interrupted, its recordings recovered, a new worker forked
 *   SIGTERM/INT   every worker drains as a single server does (shutdownGrace); a second signal hurries
 *   SIGHUP        fresh workers (the code on disk) are forked; once they listen, the old ones stop
 *                 accepting and exit when their last session ends: an upgrade drops no session
 */
export interface PrimaryOptions {
  config: Config;
  workers: number;
  stderr: NodeJS.WriteStream;
}

interface Slot {
  name: string;
  housekeeping: boolean;
  generation: number;
  ready: boolean;
  retiring: boolean;
  addresses?: { ssh: string; web: string };
}

/** A worker that dies this soon after start, this often, is not restarted again (a crash loop). */
const CRASH_WINDOW_MS = 60_000;
const MAX_CRASHES = 10;
const READY_TIMEOUT_MS = 120_000;

export async function runPrimary(o: PrimaryOptions): Promise<void> {
  const { config, stderr } = o;
  const log = createLogger({ level: config.log.level, format: config.log.format, tty: process.stdout.isTTY === true }).child({ role: 'primary' });
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled failure in a background task'));
  const dataDir = openDataDir(config.dataDir);
  const name = nodeName(config);
  const lock = acquireServeLock(nodeLockPath(dataDir.paths.dir, name), systemClock.now());
  let store: Store | undefined;
  let beat: NodeJS.Timeout | undefined;
  let incarnation = '';
  try {
    store = await openStore({ config, dataDir, clock: systemClock });
    incarnation = (await claimName(store, name, config.node.deadAfter, [], dataDir.paths.dir)).incarnation;
    await recoverMachine(store, name, dataDir.paths.recordings, signer(dataDir.hostKey), log, config.node.deadAfter);
  } catch (err) {
    await store?.close().catch(() => undefined);
    lock.release();
    throw err;
  }
  const db = store;
  beat = setInterval(() => {
    void (async () => {
      // Taken for dead by another node (a long pause): it holds no session, so it only registers again.
      if (!(await db.nodes.heartbeat(name, incarnation))) incarnation = (await claimName(db, name, config.node.deadAfter, [], dataDir.paths.dir)).incarnation;
    })().catch((err: unknown) => log.warn({ err }, 'primary heartbeat failed'));
  }, heartbeatEvery(config.node.deadAfter));

  const slots = new Map<Worker, Slot>();
  // The node's one pre-auth throttle, asked by every worker (cluster/throttle.ts).
  const answerThrottle = throttleAnswerer(new AddressThrottle(systemClock));
  let nextIndex = 1;
  let generation = 1;
  let stopping = false;
  let announced = false;
  let reloading = false;
  const crashes: number[] = [];
  let failure: Error | null = null;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => { finish = resolve; });

  const send = (w: Worker, m: ToWorker) => { try { w.send(m); } catch { /* it is exiting */ } };

  function fork(housekeeping: boolean, gen: number): Worker {
    const wname = `${name}/w${nextIndex++}`;
    const w = cluster.fork({ [WORKER_NAME_ENV]: wname, [WORKER_HOUSEKEEPING_ENV]: housekeeping ? '1' : '0' });
    slots.set(w, { name: wname, housekeeping, generation: gen, ready: false, retiring: false });
    w.on('message', (m: unknown) => answerThrottle(w, m));
    w.on('message', (m: unknown) => {
      const slot = slots.get(w);
      if (!slot || !isToPrimary(m)) return;
      if (m.gh === 'ready') {
        slot.ready = true;
        slot.addresses = { ssh: m.ssh, web: m.web };
        announce();
      }
    });
    return w;
  }

  function announce(): void {
    if (announced) return;
    const first = [...slots.values()].filter((s) => s.generation === 1);
    if (first.length < o.workers || !first.every((s) => s.ready)) return;
    announced = true;
    const { ssh, web } = first[0]!.addresses!;
    log.info({ ssh, web, workers: o.workers, node: name, dataDir: config.dataDir, created: dataDir.created }, 'gatehouse started');
    stderr.write([
      `gatehouse: data in ${config.dataDir}${dataDir.created ? ' (created)' : ''}`,
      `gatehouse: node ${name}, ${o.workers} workers (pids ${[...slots.keys()].map((w) => w.process.pid).join(', ')})`,
      `gatehouse: ssh on ${ssh}`,
      `gatehouse: web UI on ${web}`,
    ].join('\n') + '\n');
  }

  cluster.on('exit', (w, code, signal) => {
    const slot = slots.get(w);
    if (!slot) return;
    slots.delete(w);
    const pid = w.process.pid ?? 0;
    if (stopping) {
      if (slots.size === 0) finish();
      return;
    }
    if (slot.retiring && code === 0) {
      log.info({ worker: slot.name, pid }, 'an old worker finished its last session and exited');
      // It left its row stopped: a worker's name never comes back, so the row goes (nodes stay few).
      void db.nodes.prune().catch((err: unknown) => log.warn({ err }, 'could not drop the rows of old workers'));
      return;
    }
    // A crash: what it held is closed here, before its place is taken.
    log.error({ worker: slot.name, pid, code, signal }, 'a worker died: closing its sessions as interrupted and starting another');
    void (async () => {
      const incarnation = (await db.nodes.list()).find((n) => n.name === slot.name)?.incarnation;
      await recoverNode(db, slot.name, dataDir.paths.recordings, signer(dataDir.hostKey), log, incarnation);
      await db.nodes.prune();
    })()
      .catch((err: unknown) => log.error({ err, worker: slot.name }, 'could not close the sessions of a dead worker'));
    // A fresh worker of a SIGHUP that dies before it serves is not replaced: reload() sees it gone and
    // keeps the old workers serving (new code that does not start must not crash-loop the node down).
    if (reloading && slot.generation === generation && !slot.ready) return;
    if (!announced && slot.generation === 1) {
      failure = new Error(`a worker exited (code ${code ?? signal}) before the server started; see its error above`);
      return stopAll();
    }
    if (slot.retiring) return;
    const now = Date.now();
    crashes.push(now);
    while (crashes.length > 0 && now - crashes[0]! > CRASH_WINDOW_MS) crashes.shift();
    if (crashes.length > MAX_CRASHES) {
      failure = new Error(`workers crashed ${crashes.length} times within ${CRASH_WINDOW_MS / 1000}s: giving up`);
      return stopAll();
    }
    fork(slot.housekeeping, generation);
  });

  function stopAll(hurry = false): void {
    if (stopping && !hurry) return;
    stopping = true;
    for (const [w, slot] of slots) {
      // A worker still starting may not listen to messages yet; it holds no session: a signal will do.
      if (!slot.ready) w.process.kill('SIGTERM');
      else send(w, { gh: hurry ? 'hurry' : 'stop' });
    }
    if (slots.size === 0) finish();
  }

  async function reload(): Promise<void> {
    if (stopping || reloading) return;
    reloading = true;
    const old = [...slots.entries()].filter(([, s]) => !s.retiring);
    const gen = ++generation;
    log.info({ workers: o.workers, old: old.map(([, s]) => s.name) }, 'SIGHUP: starting fresh workers; the old ones finish their sessions');
    const fresh = Array.from({ length: o.workers }, (_, i) => fork(i === 0, gen));
    try {
      await waitReady(fresh);
    } catch (err) {
      // The new code does not start: keep the old workers serving, say so loudly.
      log.error({ err }, 'SIGHUP: the fresh workers did not start; the old ones keep serving');
      for (const w of fresh) {
        const s = slots.get(w);
        if (!s) continue;
        s.retiring = true;
        // One still starting has no message listener yet: a stop message would be lost and it would
        // serve old-generation connections for ever. It holds no session: a signal ends it.
        if (!s.ready) w.process.kill('SIGTERM');
        else send(w, { gh: 'stop' });
      }
      reloading = false;
      return;
    }
    for (const [w, s] of old) {
      if (!slots.has(w)) continue;
      s.retiring = true;
      send(w, { gh: 'retire' });
    }
    log.info({ workers: fresh.map((w) => slots.get(w)?.name) }, 'SIGHUP: fresh workers serve; old ones retiring');
    reloading = false;
  }

  function waitReady(ws: Worker[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { cleanup(); reject(new Error('timed out waiting for the fresh workers')); }, READY_TIMEOUT_MS);
      const check = () => {
        if (ws.some((w) => !slots.has(w))) { cleanup(); reject(new Error('a fresh worker exited before it served')); return; }
        if (ws.every((w) => slots.get(w)?.ready)) { cleanup(); resolve(); }
      };
      const poll = setInterval(check, 100);
      const cleanup = () => { clearTimeout(timer); clearInterval(poll); };
    });
  }

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) log.info({ signal }, 'gatehouse stopping: every worker drains its sessions');
    else log.warn({ signal }, 'second signal: the workers close their live sessions now');
    stopAll(signals > 1);
  };
  const onHup = () => { void reload(); };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHup);

  for (let i = 0; i < o.workers; i++) fork(i === 0, 1);
  await finished;

  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.off('SIGHUP', onHup);
  clearInterval(beat);
  await db.nodes.prune().catch(() => undefined);
  await db.nodes.leave(name, incarnation).catch(() => undefined);
  await db.close();
  lock.release();
  if (failure) throw failure;
  log.info('gatehouse stopped');
}

/**
 * At the primary's start: this machine's node and every worker node of a previous run (NAME/…) may
 * have left sessions and recordings open (a crash, kill -9). The lock says no other server of this
 * name runs, so they are closed as interrupted here, before any worker starts.
 *
 * A worker row whose heartbeat is fresher than deadAfter (the store's clock) is left alone: the lock
 * covers this data directory only, and a copy of it (a cloned machine keeping the host name) may
 * run live workers of the same name; a truly dead one is reaped once its heartbeat goes stale.
 */
export async function recoverMachine(store: Store, name: string, root: string, sign: (h: string) => string, log: Logger, deadAfterMs: number): Promise<void> {
  const names = new Set([name]);
  const generations = new Map<string, string>();
  const now = await store.nodes.now();
  for (const n of await store.nodes.list()) {
    if (n.name !== name && now - n.heartbeatAt < deadAfterMs) continue;
    // Only this machine's workers that neither left cleanly nor were reaped: a NAME/wK row of another
    // host is another server's (a name clash), and its sessions are not this primary's to close.
    // (Two machines sharing a host name and node name cannot get here both: the name's claim, by
    // incarnation, refuses the second while the first is live.)
    if (n.name.startsWith(`${name}/`) && n.host === os.hostname() && n.stoppedAt === null && n.reapedAt === null) {
      names.add(n.name);
      generations.set(n.name, n.incarnation);
    }
  }
  for (const n of names) await recoverNode(store, n, root, sign, log, generations.get(n));
  await store.nodes.prune();
}

/**
 * Close one node's leftovers: its open recordings (cut to the last line), then its sessions as
 * interrupted; a worker's row (`incarnation` given) is marked stopped and, with nothing left open, dropped.
 */
export async function recoverNode(store: Store, name: string, root: string, sign: (h: string) => string, log: Logger, incarnation?: string): Promise<void> {
  await recoverRecordings(store, root, sign, log, name);
  const ids = await store.sessions.closeInterrupted(name);
  if (ids.length > 0) log.warn({ node: name, sessions: ids }, 'closed sessions left open by a previous run as interrupted');
  if (incarnation !== undefined) await store.nodes.leave(name, incarnation);
}
