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
 */
export async function reapDeadNodes(o: {
  store: Store; me: string; deadAfterMs: number; now: number; root: string; sign: (h: string) => string; log: Logger;
}): Promise<string[]> {
  const { store, me, log } = o;
  const reaped: string[] = [];
  for (const n of await store.nodes.list()) {
    if (!isDead(n, me, o.now - o.deadAfterMs)) continue;
    if (!(await store.nodes.reap(n.name, o.now - o.deadAfterMs, me))) continue;
    reaped.push(n.name);
    const recordings = await recoverPresent(store, n.name, o.root, o.sign, log);
    const sessions = await store.sessions.closeInterrupted(n.name);
    await store.audit.append(draft('node.reaped', 'system', { node: n.name, by: me, lastHeartbeat: new Date(n.heartbeatAt).toISOString(), sessions, recordings }));
    log.warn({ node: n.name, lastHeartbeat: new Date(n.heartbeatAt).toISOString(), sessions, recordings }, 'a node stopped sending heartbeats: its open sessions are closed as interrupted');
  }
  return reaped;
}

export function isDead(n: NodeRecord, me: string, before: number): boolean {
  return n.name !== me && n.stoppedAt === null && n.reapedAt === null && n.heartbeatAt < before;
}

/** The dead node's open recordings whose files this node can see: cut to the last line, chained as interrupted. */
async function recoverPresent(store: Store, node: string, root: string, sign: (h: string) => string, log: Logger): Promise<number> {
  let n = 0;
  for (const r of await store.recordings.listOpen()) {
    const owner = (await store.sessions.get(r.sessionId))?.node ?? null;
    if (owner !== node) continue;
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
