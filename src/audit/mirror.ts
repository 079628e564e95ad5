import type { Logger } from '../shared/logger.js';
import type { Store } from '../store/types.js';

/**
 * Mirrors the audit table to the log as JSON lines for a SIEM. It tails the table rather than being
 * called by writers, so events written by other processes (the CLI) reach the log as well; the
 * cursor is kept in the store so a restart neither repeats nor skips events.
 */
const CURSOR_KEY = 'audit.mirror.cursor';

export interface AuditMirror {
  /** Emit everything new now (also runs on a timer). */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/** Where the server keeps the newest audit row it has signed. */
export const AUDIT_HEAD_KEY = 'audit.head';

/**
 * Besides mirroring, the server signs the newest row it has seen with the bastion's host key, so
 * rows removed from the end of the table (which no link in the chain can reveal) are noticed.
 */
export async function startAuditMirror(store: Store, log: Logger, sign?: (hash: string) => string, intervalMs = 250): Promise<AuditMirror> {
  const audit = log.child({ stream: 'audit' });
  let cursor = Number((await store.meta.get(CURSOR_KEY)) ?? 0);
  let running: Promise<void> | null = null;

  const pump = async () => {
    for (;;) {
      const rows = await store.audit.after(cursor, 500);
      if (rows.length === 0) return;
      for (const r of rows) {
        audit.info({ event: r.type, auditId: r.id, actor: r.actor, user: r.subject ?? undefined, data: r.data, time: new Date(r.ts).toISOString(), hash: r.hash }, 'audit');
      }
      const last = rows[rows.length - 1]!;
      cursor = last.id;
      await store.meta.set(CURSOR_KEY, String(cursor));
      if (sign) await store.meta.set(AUDIT_HEAD_KEY, JSON.stringify({ id: last.id, hash: last.hash, signature: sign(last.hash) }));
    }
  };
  const flush = () => (running ??= pump().finally(() => { running = null; }));
  const timer = setInterval(() => { flush().catch((err) => log.error({ err }, 'audit mirror failed')); }, intervalMs);
  timer.unref();
  return {
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
