import Database from 'better-sqlite3';
import type pg from 'pg';
import { verifyChain, type ChainRow, type ChainVerdict } from '../audit/chain.js';
import { GatehouseError } from '../shared/errors.js';
import { cleanText, createPool, LOCK, migrate as migratePg, redactUrl, storeError } from './postgres/db.js';
import { openDatabase } from './sqlite/db.js';

/**
 * Copy a SQLite store into an empty PostgreSQL database (`gatehouse migrate`), table by table and
 * row by row, keeping every id and the audit chain's hashes as they are: the copy is checked by the
 * same verify as the original, never re-chained (re-chaining would launder a tampered row).
 *
 * The copy is driven by the two schemas, not by a list of tables: every SQLite table must have a
 * PostgreSQL twin with the same columns (the few differences below are the backends' documented
 * ones), so a table a later migration adds to both is copied without a change here, and one added to
 * only one side stops the copy instead of being left behind.
 *
 * All of it is one PostgreSQL transaction: an interrupted run leaves the target as empty as it was
 * (and the SQLite file is only read). The emptiness check runs inside it under the audit chain's
 * lock, so two runs at once cannot both copy, and a node started on the target meanwhile waits.
 */

export interface TableCount {
  table: string;
  source: number;
  target: number;
}

export interface CopyResult {
  tables: TableCount[];
  /** The source's audit chain (checked before anything was copied). */
  audit: ChainVerdict;
}

export interface CopyOptions {
  sqliteFile: string;
  url: string;
  /** Runs inside the transaction once every row is in and counted (e.g. the recordings' upload); a throw rolls it all back. */
  beforeCommit?: (tables: TableCount[]) => Promise<void>;
}

/** SQLite-only tables: FTS5's own storage behind session_text, and SQLite's bookkeeping. */
const SQLITE_INTERNAL = /^(sqlite_|session_text_(data|idx|content|docsize|config)$)/;
/**
 * Short-lived login state, not carried over: an MFA grace earned on the old store must not let a
 * key in without its TOTP on the new one, and TOTP-prompt seats belong to connections long gone.
 */
const NOT_COPIED = new Set(['mfa_grace', 'mfa_pending']);

/**
 * Columns only one side has, each for a reason (src/store/postgres/migrations.ts):
 * - sessions.text_key / text_chunks pack SQLite's FTS rowids; PostgreSQL's session_text has its own ids.
 * - PostgreSQL fills sessions.seq (the open order SQLite reads from rowids: rows go in rowid order)
 *   and session_text.id itself; audit_log.session is data.session, copied out at append time.
 */
const SQLITE_ONLY: Record<string, readonly string[]> = { sessions: ['text_key', 'text_chunks'] };
const DERIVED: Record<string, Record<string, (row: Record<string, unknown>) => unknown>> = {
  audit_log: { session: (r) => sessionOf(r.data) },
};
const GENERATED: Record<string, readonly string[]> = { sessions: ['seq'], session_text: ['id'] };

function sessionOf(data: unknown): string | null {
  try {
    const s = (JSON.parse(String(data)) as { session?: unknown }).session;
    return typeof s === 'string' ? cleanText(s) : null;
  } catch {
    return null;
  }
}

interface PgColumn { name: string; type: string; nullable: boolean; hasDefault: boolean }

const ident = (s: string) => `"${s.replaceAll('"', '""')}"`;

function migrateError(message: string, hint?: string): GatehouseError {
  return new GatehouseError('GH_STORE', message, hint === undefined ? {} : { hint });
}

/** PostgreSQL tables in an order where every table comes after the tables its foreign keys name. */
async function pgTables(c: pg.PoolClient): Promise<Map<string, PgColumn[]>> {
  const cols = (await c.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; column_default: string | null; is_identity: string }>(
    `SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity FROM information_schema.columns
     WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)).rows;
  const byTable = new Map<string, PgColumn[]>();
  for (const r of cols) {
    if (r.table_name === 'gatehouse_schema') continue;
    const list = byTable.get(r.table_name) ?? [];
    list.push({ name: r.column_name, type: r.data_type, nullable: r.is_nullable === 'YES', hasDefault: r.column_default !== null || r.is_identity === 'YES' });
    byTable.set(r.table_name, list);
  }
  const fks = (await c.query<{ child: string; parent: string }>(
    `SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent FROM pg_constraint c
     WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace`)).rows;
  const deps = new Map<string, Set<string>>();
  for (const f of fks) if (f.child !== f.parent) (deps.get(f.child) ?? deps.set(f.child, new Set()).get(f.child)!).add(f.parent);
  const ordered = new Map<string, PgColumn[]>();
  const visiting = new Set<string>();
  const visit = (t: string) => {
    if (ordered.has(t) || visiting.has(t)) return;
    visiting.add(t);
    for (const p of deps.get(t) ?? []) if (byTable.has(p)) visit(p);
    ordered.set(t, byTable.get(t)!);
  };
  for (const t of [...byTable.keys()].sort()) visit(t);
  return ordered;
}

function sqliteTables(db: Database.Database): Map<string, string[]> {
  const names = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all()
    .map((r) => r.name).filter((n) => !SQLITE_INTERNAL.test(n));
  return new Map(names.map((n) => [n, db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info(${quoteLit(n)})`).all().map((c) => c.name)]));
}

const quoteLit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** A SQLite value as the PostgreSQL column wants it (0/1 → boolean; text without NUL, as the PG store writes it). */
function convert(v: unknown, col: PgColumn): unknown {
  if (v === null || v === undefined) return null;
  if (col.type === 'boolean') return v !== 0 && v !== '0' && v !== false;
  if (col.type === 'bytea') return Buffer.isBuffer(v) ? v : Buffer.from(String(v));
  if (typeof v === 'string') return cleanText(v);
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/**
 * Every non-empty table of the target. meta is left out: migrations seed it (the policy version),
 * and it holds no record of anything; a database that served or was copied into has rows elsewhere.
 */
async function rowsInTarget(c: pg.PoolClient, tables: Iterable<string>): Promise<string[]> {
  const full: string[] = [];
  for (const t of tables) {
    if (t === 'meta') continue;
    const r = await c.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${ident(t)}) AS any`);
    if (r.rows[0]?.any) full.push(t);
  }
  return full;
}

const BATCH_PARAMS = 30_000;

async function copyTable(db: Database.Database, c: pg.PoolClient, table: string, sqliteCols: string[], pgCols: PgColumn[]): Promise<number> {
  const byName = new Map(pgCols.map((p) => [p.name, p]));
  const skipped = new Set(SQLITE_ONLY[table] ?? []);
  const copied = sqliteCols.filter((n) => !skipped.has(n));
  const stray = copied.filter((n) => !byName.has(n));
  if (stray.length > 0) {
    throw migrateError(`column ${stray.map((s) => `${table}.${s}`).join(', ')} of the SQLite store has no place in the PostgreSQL schema`,
      'use the same gatehouse version for both; a table added to one backend only is a bug to report');
  }
  const derived = DERIVED[table] ?? {};
  const generated = new Set(GENERATED[table] ?? []);
  for (const p of pgCols) {
    if (copied.includes(p.name) || derived[p.name] || generated.has(p.name) || p.nullable || p.hasDefault) continue;
    throw migrateError(`column ${table}.${p.name} of the PostgreSQL schema has no source in the SQLite store`);
  }
  const targets = [...copied, ...Object.keys(derived)];
  const cols = targets.map((n) => byName.get(n)!);
  const perRow = Math.max(1, Math.floor(BATCH_PARAMS / targets.length));
  const insert = (n: number) => `INSERT INTO ${ident(table)} (${targets.map(ident).join(', ')}) VALUES ${
    Array.from({ length: n }, (_, i) => `(${targets.map((_, j) => `$${i * targets.length + j + 1}`).join(', ')})`).join(', ')}`;
  // Rowid order is the order rows were made: PostgreSQL's identities (sessions.seq) follow it.
  const hasRowid = !(db.prepare<[string], { wr: number }>("SELECT count(*) AS wr FROM sqlite_master WHERE name = ? AND sql LIKE '%WITHOUT ROWID%'").get(table)?.wr);
  let n = 0;
  let batch: unknown[] = [];
  let inBatch = 0;
  const flush = async () => {
    if (inBatch === 0) return;
    await c.query(insert(inBatch), batch);
    n += inBatch;
    batch = [];
    inBatch = 0;
  };
  // Read in pages by rowid rather than one iterator held open across the awaits of the inserts.
  const page = 2_000;
  if (hasRowid) {
    const stmt = db.prepare(`SELECT rowid AS _rid, ${copied.map(ident).join(', ')} FROM ${ident(table)} WHERE rowid > ? ORDER BY rowid LIMIT ${page}`);
    let after = Number.MIN_SAFE_INTEGER;
    for (;;) {
      const rows = stmt.all(after) as Record<string, unknown>[];
      if (rows.length === 0) break;
      for (const r of rows) {
        for (let j = 0; j < copied.length; j++) batch.push(convert(r[copied[j]!], cols[j]!));
        for (const [name, fn] of Object.entries(derived)) batch.push(convert(fn(r), byName.get(name)!));
        if (++inBatch >= perRow) await flush();
      }
      after = rows[rows.length - 1]!._rid as number;
    }
  } else {
    for (const r of db.prepare(`SELECT ${copied.map(ident).join(', ')} FROM ${ident(table)}`).all() as Record<string, unknown>[]) {
      for (let j = 0; j < copied.length; j++) batch.push(convert(r[copied[j]!], cols[j]!));
      for (const [name, fn] of Object.entries(derived)) batch.push(convert(fn(r), byName.get(name)!));
      if (++inBatch >= perRow) await flush();
    }
  }
  await flush();
  return n;
}

/** Identities taken by copied ids continue after them (and after SQLite's AUTOINCREMENT high-water mark). */
async function advanceIdentities(db: Database.Database, c: pg.PoolClient, tables: Map<string, PgColumn[]>): Promise<void> {
  const seqs = new Map<string, number>();
  try {
    for (const r of db.prepare<[], { name: string; seq: number }>('SELECT name, seq FROM sqlite_sequence').all()) seqs.set(r.name, Number(r.seq));
  } catch { /* no AUTOINCREMENT table */ }
  const ids = (await c.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND is_identity = 'YES' AND identity_generation = 'BY DEFAULT'`)).rows;
  for (const { table_name: t, column_name: col } of ids) {
    if (!tables.has(t)) continue;
    const max = Number((await c.query<{ m: number | null }>(`SELECT max(${ident(col)}) AS m FROM ${ident(t)}`)).rows[0]?.m ?? 0);
    const high = Math.max(max, seqs.get(t) ?? 0);
    if (high > 0) await c.query(`SELECT setval(pg_get_serial_sequence($1, $2), $3)`, [ident(t), col, high]);
  }
}

/** The source's audit chain, read straight from the file. */
function sourceAudit(db: Database.Database): ChainVerdict {
  return verifyChain(db.prepare<[], ChainRow>('SELECT id, ts, type, actor, subject, data, prev_hash, hash FROM audit_log ORDER BY id').iterate());
}

export async function copySqliteToPostgres(o: CopyOptions): Promise<CopyResult> {
  // The schema brought up to date first, as every gatehouse command does when it opens the store.
  openDatabase(o.sqliteFile).close();
  // Opened read-write only to hold SQLite's write lock (nothing is written): a read snapshot alone
  // would let a CLI change (user disable, grant remove) commit after it and be lost with the old store.
  const db = new Database(o.sqliteFile, { fileMustExist: true });
  let pool: pg.Pool | undefined;
  try {
    // One transaction holding the write lock for the whole copy: a CLI command writing meanwhile
    // waits (then fails with SQLITE_BUSY) instead of committing a change the copy never sees.
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
      throw migrateError('the SQLite store is being written (another gatehouse command holds its write lock): nothing was copied',
        'stop gatehouse serve and wait for running commands to end, then run migrate again');
    }
    const audit = sourceAudit(db);
    if (!audit.ok) {
      throw migrateError(`the SQLite store's audit log is BROKEN at event #${audit.badId} (${audit.problem}): nothing was copied`,
        'find out what changed it (gatehouse verify, your backups) before moving this store anywhere');
    }
    const source = sqliteTables(db);
    pool = createPool(o.url);
    try {
      await migratePg(pool);
    } catch (err) {
      if ((err as { code?: string }).code === 'GH_STORE') throw err;
      throw storeError('cannot prepare the PostgreSQL database', err, o.url);
    }
    const c = await pool.connect();
    let broken = false;
    const lost = () => { broken = true; };
    c.on('error', lost);
    try {
      await c.query('BEGIN');
      try {
        await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...LOCK.audit]);
        const target = await pgTables(c);
        const full = await rowsInTarget(c, target.keys());
        if (full.length > 0) {
          throw migrateError(`the PostgreSQL database ${redactUrl(o.url)} is not empty (rows in ${full.join(', ')}): migrate copies into an empty database only`,
            'create a new database (createdb) and give its URL to --to; a database a migrate already filled is done');
        }
        const missing = [...source.keys()].filter((t) => !target.has(t));
        if (missing.length > 0) {
          throw migrateError(`table ${missing.join(', ')} of the SQLite store has no place in the PostgreSQL schema`,
            'use the same gatehouse version for both; a table added to one backend only is a bug to report');
        }
        const tables: TableCount[] = [];
        for (const [t, cols] of target) {
          if (t === 'meta' || NOT_COPIED.has(t)) continue;
          const sc = source.get(t);
          const n = sc ? await copyTable(db, c, t, sc, cols) : 0;
          tables.push({ table: t, source: sc ? Number(db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${ident(t)}`).get()!.n) : 0, target: n });
        }
        // meta last, over what the copy's triggers bumped: the policy version and the mirror offsets are the source's.
        const meta = db.prepare<[], { key: string; value: string }>('SELECT key, value FROM meta').all();
        for (const m of meta) await c.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', [cleanText(m.key), cleanText(m.value)]);
        tables.push({ table: 'meta', source: meta.length, target: meta.length });
        await advanceIdentities(db, c, target);
        // Counted again in the target, not taken from what the inserts reported.
        for (const row of tables) {
          // meta: the source's keys (a key only PostgreSQL's migrations seed is not part of the copy).
          const r = row.table === 'meta'
            ? await c.query<{ n: number }>('SELECT count(*) AS n FROM meta WHERE key = ANY($1)', [meta.map((m) => cleanText(m.key))])
            : await c.query<{ n: number }>(`SELECT count(*) AS n FROM ${ident(row.table)}`);
          row.target = Number(r.rows[0]!.n);
        }
        const off = tables.filter((x) => x.source !== x.target);
        if (off.length > 0) throw migrateError(`row counts differ after the copy (${off.map((x) => `${x.table}: ${x.source} → ${x.target}`).join(', ')}): nothing was kept`);
        await o.beforeCommit?.(tables);
        await c.query('COMMIT');
        return { tables: tables.sort((a, b) => a.table.localeCompare(b.table)), audit };
      } catch (err) {
        await c.query('ROLLBACK').catch(() => { broken = true; });
        throw err;
      }
    } finally {
      c.off('error', lost);
      c.release(broken);
    }
  } catch (err) {
    if (err instanceof GatehouseError) throw err;
    throw storeError('the copy into PostgreSQL failed, nothing was kept', err, o.url);
  } finally {
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
    await pool?.end().catch(() => undefined);
  }
}
