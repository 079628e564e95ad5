import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { draft } from '../audit/events.js';
import type { Logger } from '../shared/logger.js';
import type { Store } from '../store/types.js';
import { truncateToLastLine } from './file.js';
import { asStorage, localRecordingFile } from './storage/local.js';
import type { RecordingStorage } from './storage/types.js';

/**
 * After a crash: every recording still marked open is cut back to its last complete line (never a
 * partial JSON line on disk), hashed, chained and marked interrupted; its session is closed as
 * interrupted by the caller. A file that vanished is chained as failed, so verify reports it.
 * Given a node name, only recordings of that node's sessions (or of sessions with no node) are
 * touched, as with the sessions themselves. With object storage the spool files are cut here and
 * uploaded afterwards (RecordingStorage.resume), once their rows are closed.
 */
export async function recoverRecordings(store: Store, storage: RecordingStorage | string, sign: (h: string) => string, log: Logger, node?: string): Promise<number> {
  const spool = asStorage(storage).spool;
  const open = await store.recordings.listOpen();
  let recovered = 0;
  for (const r of open) {
    // Another node's open recording belongs to a live session there, not to this node's crash.
    if (node !== undefined) {
      const owner = (await store.sessions.get(r.sessionId))?.node ?? null;
      if (owner !== null && owner !== node) continue;
    }
    recovered++;
    const file = localRecordingFile(spool, r.path);
    let size = 0;
    let sha256 = createHash('sha256').digest('hex');
    let cut = 0;
    let state: 'interrupted' | 'failed' = 'interrupted';
    if (file !== null && fs.existsSync(file)) ({ size, sha256, cut } = truncateToLastLine(file));
    else state = 'failed';
    await store.recordings.close({ sessionId: r.sessionId, channel: r.channel, state, truncated: false, size, sha256 }, sign);
    await store.audit.append(draft('recording.recovered', 'system', { session: r.sessionId, channel: r.channel, file: r.path, state, cutBytes: cut, size, sha256 }));
    log.warn({ session: r.sessionId, channel: r.channel, state, cutBytes: cut }, 'recovered a recording left open by a crash');
  }
  return recovered;
}
