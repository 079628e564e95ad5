import Database from 'better-sqlite3';
import type { AuditDraft, AuditRecord } from '../../audit/events.js';
import { subjectOf } from '../../audit/events.js';
import { GENESIS_HASH, rowHash, type ChainRow } from '../../audit/chain.js';
import type { Clock } from '../../shared/clock.js';
import { GatehouseError } from '../../shared/errors.js';
import { MIGRATIONS } from './migrations.js';

export type DB = Database.Database;

/** What every table module gets: the connection, the clock, and the one way to make a change. */
export interface Ctx {
  db: DB;
  clock: Clock;
  /**
   * Run fn in an IMMEDIATE transaction (so the CLI and the server never interleave writes) and
   * append the audit events it returns in the same transaction: a change and its audit row commit
   * together or not at all.
   */
  change<T>(fn: (now: number) => { result: T; events: AuditDraft[] }): T;
  appendAudit(ev: AuditDraft, now: number): AuditRecord;
}

export function openDatabase(file: string): DB {
  let db: DB;
  try {
    db = new Database(file, { timeout: 5000 });
  } catch (err) {
    throw new GatehouseError('GH_STORE', `cannot open database ${file}: ${(err as Error).message}`, {
      hint: 'check that the data directory is writable by this user', cause: err,
    });
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

/** Apply pending migrations; a no-op when the schema is current. Refuse a newer schema than we know. */
export function migrate(db: DB): number {
  const run = db.transaction(() => {
    let v = db.pragma('user_version', { simple: true }) as number;
    if (v > MIGRATIONS.length) {
      throw new GatehouseError('GH_STORE', `database schema version ${v} is newer than this gatehouse (${MIGRATIONS.length})`, {
        hint: 'upgrade gatehouse; never run an older build on a newer database',
      });
    }
    for (; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${v}`);
    return v;
  });
  return run.immediate();
}

export function makeCtx(db: DB, clock: Clock): Ctx {
  const lastRow = db.prepare<[], { id: number; hash: string }>('SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1');
  const insert = db.prepare(
    'INSERT INTO audit_log (id, ts, type, actor, subject, data, prev_hash, hash) VALUES (@id, @ts, @type, @actor, @subject, @data, @prev_hash, @hash)',
  );
  const appendAudit = (ev: AuditDraft, now: number): AuditRecord => {
    const last = lastRow.get();
    const row: Omit<ChainRow, 'prev_hash' | 'hash'> = {
      id: (last?.id ?? 0) + 1,
      ts: now,
      type: ev.type,
      actor: ev.actor,
      subject: subjectOf(ev),
      data: JSON.stringify(ev.data),
    };
    const prev = last?.hash ?? GENESIS_HASH;
    const hash = rowHash(prev, row);
    insert.run({ ...row, prev_hash: prev, hash });
    return { ...row, data: ev.data as Record<string, unknown>, prevHash: prev, hash };
  };
  return {
    db,
    clock,
    appendAudit: (ev, now) => db.transaction(() => appendAudit(ev, now)).immediate(),
    change<T>(fn: (now: number) => { result: T; events: AuditDraft[] }): T {
      return db
        .transaction(() => {
          const now = clock.now();
          const { result, events } = fn(now);
          for (const ev of events) appendAudit(ev, now);
          return result;
        })
        .immediate();
    },
  };
}

/** Map SQLite constraint failures to errors a person can act on. */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' || (err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
