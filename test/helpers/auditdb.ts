import path from 'node:path';
import Database from 'better-sqlite3';

/**
 * Reads of the audit log straight from the SQLite file, for a test's own bookkeeping (which session
 * did my ssh client open?): one query instead of a CLI process (~1 s of start-up on a loaded
 * machine, polled many times). Assertions about what the product reports still go through the CLI.
 */
export interface AuditRow { id: number; type: string; data: Record<string, unknown> }

function withDb<T>(dataDir: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path.join(dataDir, 'gatehouse.db'), { readonly: true, fileMustExist: true });
  try { return fn(db); } finally { db.close(); }
}

/** The id of the newest audit row (0 when there is none): a mark to look for rows after. */
export function auditMark(dataDir: string): number {
  return withDb(dataDir, (db) => (db.prepare('SELECT max(id) AS id FROM audit_log').get() as { id: number | null }).id ?? 0);
}

/** Audit rows of a type after a mark, oldest first, those about `user` only when given (as the CLI's --user). */
export function auditAfter(dataDir: string, mark: number, type: string, user?: string): AuditRow[] {
  return withDb(dataDir, (db) => {
    const rows = (user === undefined
      ? db.prepare('SELECT id, type, data FROM audit_log WHERE id > ? AND type = ? ORDER BY id').all(mark, type)
      : db.prepare('SELECT id, type, data FROM audit_log WHERE id > ? AND type = ? AND (subject = ? OR actor = ?) ORDER BY id').all(mark, type, user, user)
    ) as { id: number; type: string; data: string }[];
    return rows.map((r) => ({ id: r.id, type: r.type, data: JSON.parse(r.data) as Record<string, unknown> }));
  });
}
