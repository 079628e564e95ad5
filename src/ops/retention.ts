import { asStorage } from '../recorder/storage/local.js';
import type { RecordingStorage } from '../recorder/storage/types.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Store } from '../store/types.js';
import { removeContents } from '../recorder/filecontent.js';

/**
 * Retention (recording.retention): recordings of sessions that ended longer ago than the period are
 * deleted, unless their session is on legal hold. What stays: the recording row with its hash and
 * its place in the signed chain, the recording.deleted audit event (the tombstone `verify` checks),
 * the session and channel rows with their stream digests, and the whole audit log, which retention
 * never touches.
 */
export const SWEEP_EVERY_MS = 24 * 3600_000;
const BATCH = 500;
/** One sweep deletes at most this many (the next day's sweep goes on): a sweep never runs unbounded. */
const MAX_PER_SWEEP = 100_000;

export interface RetentionDeps {
  store: Store;
  /** Where recordings are kept (a directory: the local storage on it). The object is deleted too with S3. */
  root: RecordingStorage | string;
  clock: Clock;
  log: Logger;
  /** Milliseconds to keep recordings after their session ended; null keeps them for ever. */
  retention: number | null;
  actor?: string;
}

export interface SweepResult {
  deleted: number;
  /** Files of rows already marked deleted that were still on disk (a crash mid-sweep) and are now gone. */
  leftovers: number;
}

export async function sweepRetention(d: RetentionDeps): Promise<SweepResult> {
  const result: SweepResult = { deleted: 0, leftovers: 0 };
  if (d.retention === null) return result;
  const before = d.clock.now() - d.retention;
  const actor = d.actor ?? 'system';
  // The storage never deletes outside the recordings directory (or the bucket's prefix), whatever a row names.
  const storage = asStorage(d.root);
  // Stored file contents (recording.fileContent) go with their recording, before it.
  const removeFile = async (r: { path: string; kind: string }) => { await removeContents(storage, r); return storage.remove(r.path); };
  // Marked first, then the file: a crash between the two leaves a file to remove, never a hole.
  // Once the files are confirmed gone the row says so, and later sweeps skip it (with S3 each
  // check is a request: one per deleted row on every sweep, for ever, otherwise).
  const purge = async (r: { sessionId: string; channel: number; path: string; kind: string }): Promise<boolean> => {
    const removed = await removeFile(r);
    await d.store.retention.purged(r.sessionId, r.channel);
    return removed;
  };
  for (const r of await d.store.retention.deleted()) if (await purge(r)) result.leftovers++;
  while (result.deleted < MAX_PER_SWEEP) {
    const batch = await d.store.retention.expired(before, BATCH);
    if (batch.length === 0) break;
    let progressed = false;
    for (const r of batch) {
      if (!(await d.store.retention.markDeleted(r.sessionId, r.channel, { actor }))) continue;
      progressed = true;
      result.deleted++;
      await purge(r);
    }
    // Every row of the batch was held or taken meanwhile: nothing more to do now.
    if (!progressed) break;
  }
  if (result.deleted > 0 || result.leftovers > 0) d.log.info({ ...result, before: new Date(before).toISOString() }, 'retention deleted expired recordings');
  return result;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(t: NodeJS.Timeout): void;
}

/** The daily sweep of a running server: first soon after start, then every SWEEP_EVERY_MS. */
export function startRetention(d: RetentionDeps & { firstAfterMs?: number; everyMs?: number; timers?: Timers }): { stop(): Promise<void> } {
  const timers = d.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (t) => clearTimeout(t) };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  const schedule = (ms: number) => {
    if (stopped || d.retention === null) return;
    timer = timers.setTimeout(() => {
      running = sweepRetention(d)
        .catch((err: unknown) => d.log.error({ err }, 'retention sweep failed; it runs again at the next period'))
        .finally(() => schedule(d.everyMs ?? SWEEP_EVERY_MS));
    }, ms);
    timer.unref?.();
  };
  schedule(d.firstAfterMs ?? 1_000);
  return {
    async stop() {
      stopped = true;
      if (timer) timers.clearTimeout(timer);
      await running;
    },
  };
}
