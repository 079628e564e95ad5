/**
 * The PostgreSQL backend's one way to talk to the database; every table module (and any new one,
 * e.g. nodes.ts) takes a `Ctx` and uses only this:
 *
 * - `ctx.db.rows / one / run(sql, args)`: parameters are `$1, $2, …`; bigint and numeric columns
 *   come back as numbers. Inside `ctx.tx` or `store.batch`, these calls run on that transaction's
 *   client (carried by AsyncLocalStorage), so the same code works in and out of a transaction.
 * - `ctx.tx(fn)`: fn in one transaction (joins the current one when already inside).
 * - `ctx.change(fn)`: a change and the audit events it returns, committed together.
 * - `ctx.lock(key)`: a transaction-scoped advisory lock (LOCK.* below), for what must be serialized
 *   across nodes (a chain's head, a user's failure counter). Keyed by a name instead:
 *   `SELECT pg_advisory_xact_lock($1, hashtext($2))` with a LOCK namespace (see nodes.ts).
 * - Migrations: append one entry to PG_MIGRATIONS (migrations.ts) for a new table.
 * - `isUniqueViolation(err)`: a UNIQUE constraint was hit.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import type { AuditDraft, AuditRecord } from '../../audit/events.js';
import { subjectOf } from '../../audit/events.js';
import { GENESIS_HASH, rowHash, type ChainRow } from '../../audit/chain.js';
import type { Clock } from '../../shared/clock.js';
import { GatehouseError } from '../../shared/errors.js';
import { PG_MIGRATIONS } from './migrations.js';
import { redactUrl } from './redact.js';

export type Arg = string | number | boolean | null | Buffer | string[] | number[];

export interface Db {
  rows<R>(sql: string, args?: Arg[]): Promise<R[]>;
  one<R>(sql: string, args?: Arg[]): Promise<R | undefined>;
  /** Rows affected. */
  run(sql: string, args?: Arg[]): Promise<number>;
}

export interface Ctx {
  db: Db;
  clock: Clock;
  tx<T>(fn: () => Promise<T>, opts?: { snapshot?: boolean }): Promise<T>;
  change<T>(fn: (now: number) => Promise<{ result: T; events: AuditDraft[] }>): Promise<T>;
  appendAudit(ev: AuditDraft, now: number): Promise<AuditRecord>;
  lock(key: readonly [number, number]): Promise<void>;
}

/** Advisory lock keys (two int4s: a namespace for gatehouse, then what is locked). */
const NS = 0x67680000;
export const LOCK = {
  migrate: [NS, 1],
  audit: [NS, 2],
  recordings: [NS, 3],
  /** With hashtext(name) as the second key (nodes.claim). */
  nodes: NS + 4,
  /** With hashtext(user) as the second key (requests.create). */
  requests: NS + 2,
  lockout: (userId: number) => [NS + 1, userId] as const,
} as const;

// bigint (20) and numeric (1700): counts, sums and epoch milliseconds, all well within 2^53.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return (pg.types.getTypeParser as (o: number, f?: 'text' | 'binary') => unknown)(oid, format);
  },
} as unknown as pg.CustomTypesConfig;

/**
 * PostgreSQL text cannot hold NUL: terminal output, commands and paths can. A NUL becomes U+FFFD
 * (the one lossy step), never a failed write that would end a session.
 */
const clean = (a: Arg): Arg => (typeof a === 'string' && a.includes('\0') ? a.replaceAll('\0', '\uFFFD') : a);
export const cleanText = (s: string): string => clean(s) as string;

/** No single store query takes this long on a healthy database (the slowest, a search, takes ~1 s at 200k sessions). */
const QUERY_TIMEOUT_MS = 30_000;

export function createPool(url: string): pg.Pool {
  // keepAlive: a server that vanished without closing (a partition) is noticed, not waited on forever.
  // query_timeout: a query stuck on a dead connection (a failover to a new address) fails after 30 s
  // instead of the kernel's ~15 min, so revocation passes and the store-loss grace see the failure.
  const pool = new pg.Pool({
    connectionString: url, types, max: 10, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000,
    keepAlive: true, keepAliveInitialDelayMillis: 10_000, query_timeout: QUERY_TIMEOUT_MS,
  });
  // An idle client that loses its server (PostgreSQL restarted) must not crash the process.
  pool.on('error', () => { /* the next query reports it */ });
  return pool;
}

export { redactUrl };

export function storeError(what: string, err: unknown, url: string): GatehouseError {
  const msg = (err as Error).message ?? String(err);
  return new GatehouseError('GH_STORE', `${what} (${redactUrl(url)}): ${msg.split(url).join(redactUrl(url))}`, {
    hint: 'check that PostgreSQL is reachable and the store URL (config store, env GATEHOUSE_STORE) is right', cause: err,
  });
}

export function makeCtx(pool: pg.Pool, clock: Clock): Ctx & { als: AsyncLocalStorage<pg.PoolClient> } {
  const als = new AsyncLocalStorage<pg.PoolClient>();
  const exec = async (sql: string, args: Arg[] = []) => {
    const c = als.getStore();
    const params = args.map(clean);
    return c ? c.query(sql, params) : pool.query(sql, params);
  };
  const db: Db = {
    async rows<R>(sql: string, args?: Arg[]) { return (await exec(sql, args)).rows as R[]; },
    async one<R>(sql: string, args?: Arg[]) { return (await exec(sql, args)).rows[0] as R | undefined; },
    async run(sql, args) { return (await exec(sql, args)).rowCount ?? 0; },
  };
  const tx = async <T>(fn: () => Promise<T>, opts: { snapshot?: boolean } = {}): Promise<T> => {
    if (als.getStore()) return fn();
    const client = await pool.connect();
    let broken = false;
    // The server may go away while the transaction waits on other work: an error event with no
    // listener would end the process; the next query on this client reports it instead.
    const lost = () => { broken = true; };
    client.on('error', lost);
    try {
      await client.query(opts.snapshot ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
      const r = await als.run(client, fn);
      await client.query('COMMIT');
      return r;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => { broken = true; });
      throw err;
    } finally {
      client.off('error', lost);
      client.release(broken);
    }
  };
  const lock = async (key: readonly [number, number]) => { await db.run('SELECT pg_advisory_xact_lock($1, $2)', [key[0], key[1]]); };
  // Inside a transaction: the head is read and the row inserted under the chain's lock, so two nodes
  // appending at once take turns and the chain never forks.
  const appendIn = async (ev: AuditDraft, now: number): Promise<AuditRecord> => {
    await lock(LOCK.audit);
    const last = await db.one<{ id: number; hash: string }>('SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1');
    const subject = subjectOf(ev);
    const row: Omit<ChainRow, 'prev_hash' | 'hash'> = {
      id: (last?.id ?? 0) + 1, ts: now, type: cleanText(ev.type), actor: cleanText(ev.actor),
      subject: subject === null ? null : cleanText(subject), data: JSON.stringify(ev.data),
    };
    const prev = last?.hash ?? GENESIS_HASH;
    const hash = rowHash(prev, row);
    const session = (ev.data as { session?: unknown }).session;
    await db.run('INSERT INTO audit_log (id, ts, type, actor, subject, data, prev_hash, hash, session) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
      [row.id, row.ts, row.type, row.actor, row.subject, row.data, prev, hash, typeof session === 'string' ? session : null]);
    return { ...row, data: ev.data as Record<string, unknown>, prevHash: prev, hash };
  };
  return {
    db, clock, tx, lock, als,
    appendAudit: (ev, now) => tx(() => appendIn(ev, now)),
    change: <T>(fn: (now: number) => Promise<{ result: T; events: AuditDraft[] }>) => tx(async () => {
      const now = clock.now();
      const { result, events } = await fn(now);
      for (const ev of events) await appendIn(ev, now);
      return result;
    }),
  };
}

/**
 * Apply pending migrations under an advisory lock (two nodes starting at once: one migrates, the
 * other waits and finds nothing to do). Refuses a schema newer than this build.
 */
export async function migrate(pool: pg.Pool): Promise<number> {
  const c = await pool.connect();
  const ignore = () => { /* the next query on it fails and says why */ };
  c.on('error', ignore);
  try {
    await c.query('SELECT pg_advisory_lock($1, $2)', [...LOCK.migrate]);
    try {
      await c.query('CREATE TABLE IF NOT EXISTS gatehouse_schema (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      const v = Number((await c.query<{ v: number | null }>('SELECT max(version) AS v FROM gatehouse_schema')).rows[0]?.v ?? 0);
      if (v > PG_MIGRATIONS.length) {
        throw new GatehouseError('GH_STORE', `database schema version ${v} is newer than this gatehouse (${PG_MIGRATIONS.length})`, {
          hint: 'upgrade gatehouse; never run an older build on a newer database',
        });
      }
      for (let i = v; i < PG_MIGRATIONS.length; i++) {
        await c.query('BEGIN');
        try {
          await c.query(PG_MIGRATIONS[i]!);
          await c.query('INSERT INTO gatehouse_schema (version, applied_at) VALUES ($1, $2)', [i + 1, Date.now()]);
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK');
          throw err;
        }
      }
      return PG_MIGRATIONS.length;
    } finally {
      await c.query('SELECT pg_advisory_unlock($1, $2)', [...LOCK.migrate]).catch(() => undefined);
    }
  } finally {
    c.off('error', ignore);
    c.release();
  }
}

export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}

/** `$n` for the next argument (dynamic WHERE clauses). */
export function param(args: Arg[], v: Arg): string {
  args.push(v);
  return `$${args.length}`;
}
