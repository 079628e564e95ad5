import fs from 'node:fs';
import { draft } from '../audit/events.js';
import { truncateToLastLine } from '../recorder/file.js';
import { localRecordingFile } from '../recorder/storage/index.js';
import type { Logger } from '../shared/logger.js';
import type { NodeRecord, Store } from '../store/types.js';

/**
 * A node whose heartbeat stopped (kill -9, power loss, a network cut longer than node.deadAfter)
 * is taken over by the first surviving node that claims it (store.nodes.reap is atomic: one
 * reaper). Its open sessions are closed as interrupted, so auditors see them ended and a user's
 * session count is right again. Its open recordings are recovered only when their files are
 * visible here (several nodes on one shared data directory); with one data directory per node the
 * files are on the dead node's disk and its own next start recovers them (recorder/recovery.ts).
 * A live node is never reaped: its heartbeat is fresh, and reap() checks that in the same step.
 *
 * Time is the store's (store.nodes.now(): the database's clock on PostgreSQL), never this node's.
 * A reap closes only the sessions of the generation (incarnation) it reaped: a paused node that comes
 * back claims its name again as a new generation, and its new sessions are not touched. The closing
 * step (sessions, the reap marked done, `node.reaped`) is one transaction; a reap whose reaper died
 * before it is finished by a later sweep of any reaper once deadAfter has passed again. Then the rows
 * of workers with nothing left open are pruned.
 */
export async function reapDeadNodes(o: {
  store: Store; me: string; deadAfterMs: number; root: string; sign: (h: string) => string; log: Logger;
}): Promise<string[]> {
  const { store, me, log } = o;
  const reaped: string[] = [];
  const now = await store.nodes.now();
  for (const n of await store.nodes.list()) {
    let incarnation: string | null = null;
    if (isDead(n, me, now - o.deadAfterMs)) incarnation = await store.nodes.reap(n.name, o.deadAfterMs, me);
    else if (unfinished(n, now - o.deadAfterMs)) incarnation = n.incarnation;
    if (incarnation === null) continue;
    const recordings = await recoverPresent(store, new Set(await store.nodes.orphans(n.name, incarnation)), o.root, o.sign, log, n.name);
    const sessions = await store.nodes.finishReap(n.name, incarnation, me, recordings);
    if (sessions === null) continue;
    reaped.push(n.name);
    log.warn({ node: n.name, lastHeartbeat: new Date(n.heartbeatAt).toISOString(), sessions, recordings }, 'a node stopped sending heartbeats: its open sessions are closed as interrupted');
  }
  const pruned = await store.nodes.prune();
  if (pruned.length > 0) log.info({ nodes: pruned }, 'dropped the rows of workers that are gone');
  return reaped;
}

export function isDead(n: NodeRecord, me: string, before: number): boolean {
  return n.name !== me && n.stoppedAt === null && n.reapedAt === null && n.heartbeatAt < before;
}

/** Reaped long enough ago that its reaper, had it lived, would have finished (it died in between). */
export function unfinished(n: NodeRecord, before: number): boolean {
  return n.reapedAt !== null && n.reapDoneAt === null && n.reapedAt < before;
}

/** The dead generation's open recordings whose files this node can see: cut to the last line, chained as interrupted. */
async function recoverPresent(store: Store, sessions: Set<string>, root: string, sign: (h: string) => string, log: Logger, node: string): Promise<number> {
  let n = 0;
  if (sessions.size === 0) return 0;
  for (const r of await store.recordings.listOpen()) {
    if (!sessions.has(r.sessionId)) continue;
    // The spool file, never a path that climbs out of it (recorder/storage). With object storage the
    // closed file is uploaded by the next start's resume of any node sharing this spool.
    const file = localRecordingFile(root, r.path);
    if (file === null || !fs.existsSync(file)) continue; // on the dead node's own disk: its restart recovers it
    const { size, sha256, cut } = truncateToLastLine(file);
    await store.recordings.close({ sessionId: r.sessionId, channel: r.channel, state: 'interrupted', truncated: false, size, sha256 }, sign);
    await store.audit.append(draft('recording.recovered', 'system', { session: r.sessionId, channel: r.channel, file: r.path, state: 'interrupted', cutBytes: cut, size, sha256 }));
    log.warn({ session: r.sessionId, channel: r.channel, node, cutBytes: cut }, 'recovered a recording of a dead node');
    n++;
  }
  return n;
}
