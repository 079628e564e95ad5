import type { Logger } from '../shared/logger.js';
import type { Store } from '../store/types.js';
import type { Witness } from './witness.js';

/**
 * Mirrors the audit table to the log as JSON lines for a SIEM. It tails the table rather than being
 * called by writers, so events written by other processes (the CLI) reach the log as well; the
 * cursor is kept in the store so a restart neither repeats nor skips events.
 */
const CURSOR_KEY = 'audit.mirror.cursor';

export interface AuditMirror {
  /** Emit everything new now and write a checkpoint to the witness (also runs on a timer, batched). */
  flush(): Promise<void>;
  /** A last flush and checkpoint. */
  stop(): Promise<void>;
}

/**
 * Besides mirroring, each round hands the chains' heads to the witness, so rows later removed from
 * the end of a table (which no link in a chain can reveal) are noticed by verify. On the timer the
 * witness batches (at most one checkpoint a second); an explicit flush always writes one.
 */
export async function startAuditMirror(store: Store, log: Logger, witness?: Witness, intervalMs = 250): Promise<AuditMirror> {
  const audit = log.child({ stream: 'audit' });
  let cursor = Number((await store.meta.get(CURSOR_KEY)) ?? 0);
  let running: Promise<void> | null = null;

  const pump = async (force: boolean) => {
    for (;;) {
      const rows = await store.audit.after(cursor, 500);
      if (rows.length === 0) break;
      for (const r of rows) {
        audit.info({ event: r.type, auditId: r.id, actor: r.actor, user: r.subject ?? undefined, data: r.data, time: new Date(r.ts).toISOString(), hash: r.hash }, 'audit');
      }
      cursor = rows[rows.length - 1]!.id;
      await store.meta.set(CURSOR_KEY, String(cursor));
    }
    await witness?.checkpoint({ force });
  };
  const round = (force: boolean) => (running ??= pump(force).finally(() => { running = null; }));
  // An explicit flush may find a timer round under way that skipped its checkpoint: run once more.
  const flush = async () => { await round(true); await round(true); };
  const timer = setInterval(() => { round(false).catch((err) => log.error({ err }, 'audit mirror failed')); }, intervalMs);
  timer.unref();
  return {
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
