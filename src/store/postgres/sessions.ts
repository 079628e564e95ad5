import os from 'node:os';
import { invalid } from '../../shared/errors.js';
import { hitLine, MIN_SEARCH_CHARS, sessionStatus, type ChannelRecord, type SessionFilter, type SessionHit, type SessionOpen, type Store } from '../types.js';
import { MAX_FILE_FILTER } from '../sqlite/files.js';
import { toSessionRecord as toRecord, type SessionRow as BaseSessionRow } from '../rows.js';
import { param, type Arg, type Ctx, type Db } from './db.js';
import { likeSubstring, MATCHES } from './search.js';

/** total: the match count a text search's page carries (count(*) OVER ()). */
interface SessionRow extends BaseSessionRow { total?: number }

const COLUMNS = 's.id, s.user_name, s.key_fingerprint, s.source_addr, s.host_name, s.login, s.mode, s.grant_id, s.started_at, s.ended_at, s.end_reason, s.bytes_up, s.bytes_down, s.node';
/** Newest first; seq (the open order) breaks ties in started_at so that offset paging never skips or repeats a row. */
const NEWEST_FIRST = 'ORDER BY s.started_at DESC, s.seq DESC';

type Conditions = SessionFilter & { until?: number | undefined };

/** The filters of list, count and query as a WHERE clause over `sessions s` ('' when there are none). */
function sessionWhere(f: Conditions, args: Arg[]): string {
  const where: string[] = [];
  if (f.live) where.push('s.ended_at IS NULL');
  if (f.user !== undefined) where.push(`s.user_name = ${param(args, f.user)}`);
  if (f.host !== undefined) where.push(`s.host_name = ${param(args, f.host)}`);
  if (f.since !== undefined) where.push(`s.started_at >= ${param(args, f.since)}`);
  if (f.until !== undefined) where.push(`s.started_at < ${param(args, f.until)}`);
  if (f.ids !== undefined) where.push(f.ids.length ? `s.id = ANY(${param(args, f.ids)}::text[])` : 'false');
  if (f.status !== undefined) where.push(`s.status = ${param(args, f.status)}`);
  // strpos: a literal substring, never a LIKE pattern a path could smuggle in.
  if (f.file !== undefined) where.push(`s.id IN (SELECT session_id FROM transferred_files WHERE strpos(path, ${param(args, f.file.slice(0, MAX_FILE_FILTER))}) > 0)`);
  return where.length ? `WHERE ${where.join(' AND ')}` : '';
}

/** The one INSERT of a session row (sessions.open and logins.openSession); seq, the open order, is the column's default. */
export async function insertSession(db: Db, s: SessionOpen, now: number): Promise<void> {
  await db.run('INSERT INTO sessions (id, user_name, key_fingerprint, source_addr, mode, started_at, node) VALUES ($1, $2, $3, $4, $5, $6, $7)',
    [s.id, s.user, s.keyFingerprint, s.sourceAddr, s.mode, now, s.node ?? os.hostname()]);
}

const pageSize = (n: number, what: string) => {
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${what} must be a whole number, 0 or more`);
  return n;
};

/**
 * How a search spends its work (a store option so that a test can make every plan run on a small
 * data set). Text has three plans, chosen by how many chunks match (read from the trigram index, at
 * most `commonChunks` of them) and by how many sessions the filters keep:
 * - fewer chunks: the matching sessions are collected from the index, then meet the filters; exact count;
 * - a common word with filters that keep at most `smallFilter` sessions: those sessions are checked
 *   for the text (filters first, as SQLite's plan); exact count. Walking newest first would read
 *   every session of the table when the filter and the word never meet (0.7–1 s at 200k sessions);
 * - a common word otherwise: sessions are walked newest first, each checked for the text through its
 *   own chunks, until the page is full; the count walks on up to `countBudget` matches, past which
 *   it is a lower bound (`exact: false`). A common word fills a page after a few sessions.
 */
export interface PgSearchTuning {
  /** Sessions counted for a list without text; beyond, the total is a lower bound. */
  countCap: number;
  /** Matching chunks from which a word counts as common (the walking plan). */
  commonChunks: number;
  /** Matches the walking plan counts; beyond, the total is a lower bound. */
  countBudget: number;
  /** Filters keeping at most this many sessions are met first, then a common word (exact count). */
  smallFilter: number;
}
export const PG_DEFAULT_TUNING: PgSearchTuning = { countCap: 100_000, commonChunks: 2000, countBudget: 3000, smallFilter: 5000 };

export function sessionsTable(ctx: Ctx, tuning: PgSearchTuning = PG_DEFAULT_TUNING): Store['sessions'] {
  const { db, clock } = ctx;
  return {
    async open(s) {
      await insertSession(db, s, clock.now());
    },
    async setTarget(id, host, login, grantId) {
      await db.run('UPDATE sessions SET host_name = $1, login = $2, grant_id = $3 WHERE id = $4 AND host_name IS NULL', [host, login, grantId, id]);
    },
    async close(id, reason, bytesUp, bytesDown) {
      const now = clock.now();
      await db.run('UPDATE sessions SET ended_at = $1, end_reason = $2, status = $3, bytes_up = $4, bytes_down = $5 WHERE id = $6 AND ended_at IS NULL',
        [now, reason, sessionStatus({ endedAt: now, endReason: reason }), bytesUp, bytesDown, id]);
      const r = await db.one<SessionRow>(`SELECT ${COLUMNS} FROM sessions s WHERE s.id = $1`, [id]);
      return r ? toRecord(r) : null;
    },
    async closeInterrupted(node = os.hostname()) {
      // Another node's live sessions are its own business, never "left over" from this one's crash.
      const mine = 'ended_at IS NULL AND (node = $2 OR node IS NULL)';
      return ctx.tx(async () => {
        const now = clock.now();
        await db.run(`UPDATE channels SET ended_at = $1 WHERE ended_at IS NULL AND session_id IN (SELECT id FROM sessions WHERE ${mine})`, [now, node]);
        const rows = await db.rows<{ id: string }>(`UPDATE sessions SET ended_at = $1, end_reason = 'interrupted', status = 'interrupted' WHERE ${mine} RETURNING id`, [now, node]);
        return rows.map((r) => r.id);
      });
    },
    async countLive(user) {
      return (await db.one<{ n: number }>('SELECT count(*) AS n FROM sessions WHERE user_name = $1 AND ended_at IS NULL', [user]))!.n;
    },
    async bytesRelayed() {
      return (await db.one<{ n: number | null }>('SELECT sum(bytes_up + bytes_down) AS n FROM sessions WHERE ended_at IS NOT NULL'))!.n ?? 0;
    },
    async openChannel(c) {
      await db.run('INSERT INTO channels (session_id, channel, kind, command, pty, host_name, login, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
        [c.sessionId, c.channel, c.kind, c.command, c.pty, c.host, c.login, clock.now()]);
    },
    async closeChannel(c) {
      await db.run(`UPDATE channels SET ended_at = $1, exit_status = $2, exit_signal = $3, stdin_bytes = $4, stdout_bytes = $5, stderr_bytes = $6,
        stdin_sha256 = $7, stdout_sha256 = $8, stderr_sha256 = $9 WHERE session_id = $10 AND channel = $11`,
      [clock.now(), c.exitStatus, c.exitSignal, c.stdinBytes, c.stdoutBytes, c.stderrBytes, c.stdinSha256, c.stdoutSha256, c.stderrSha256, c.sessionId, c.channel]);
    },
    async list(f) {
      const args: Arg[] = [];
      const where = sessionWhere(f, args);
      const sql = `SELECT ${COLUMNS} FROM sessions s ${where} ${NEWEST_FIRST} LIMIT ${param(args, f.limit ?? 1000)} OFFSET ${param(args, f.offset ?? 0)}`;
      return (await db.rows<SessionRow>(sql, args)).map(toRecord);
    },
    async count(f) {
      const args: Arg[] = [];
      return (await db.one<{ n: number }>(`SELECT count(*) AS n FROM sessions s ${sessionWhere(f, args)}`, args))!.n;
    },
    async query(q) {
      if (q.text !== undefined && [...q.text].length < MIN_SEARCH_CHARS) throw invalid(`search text needs at least ${MIN_SEARCH_CHARS} characters`);
      const limit = pageSize(q.limit, 'limit');
      const offset = pageSize(q.offset, 'offset');
      // One snapshot: the page, the count and the hits agree.
      return ctx.tx(async () => {
        const filters = { user: q.user, host: q.host, since: q.since, until: q.until, status: q.status, file: q.file };
        if (q.text === undefined) {
          const args: Arg[] = [];
          const where = sessionWhere(filters, args);
          const rows = await db.rows<SessionRow>(`SELECT ${COLUMNS} FROM sessions s ${where} ${NEWEST_FIRST} LIMIT ${param(args, limit)} OFFSET ${param(args, offset)}`, args);
          const cargs: Arg[] = [];
          const cwhere = sessionWhere(filters, cargs);
          const n = (await db.one<{ n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM sessions s ${cwhere} LIMIT ${param(cargs, tuning.countCap + 1)}) AS x`, cargs))!.n;
          const items = rows.map((r) => ({ session: toRecord(r), hit: null }));
          if (n <= tuning.countCap) return { items, total: n, exact: true };
          return { items, total: Math.max(tuning.countCap, offset + rows.length), exact: false };
        }
        const pattern = likeSubstring(q.text);
        const chunks = (await db.one<{ n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM session_text WHERE ${MATCHES} LIMIT $2) AS x`,
          [pattern, tuning.commonChunks]))!.n;
        if (chunks >= tuning.commonChunks) {
          const few = await filteredFirst(ctx, filters, pattern, limit, offset, tuning.smallFilter);
          if (few !== null) {
            const hits = await firstHits(ctx, q.text, few.rows.map((r) => r.id));
            return { items: few.rows.map((r) => ({ session: toRecord(r), hit: hits.get(r.id) ?? null })), total: few.total, exact: true };
          }
          const args: Arg[] = [pattern];
          const where = sessionWhere(filters, args);
          const walk = `${where === '' ? 'WHERE' : `${where} AND`} EXISTS (SELECT 1 FROM session_text WHERE session_id = s.id AND ${MATCHES})`;
          const rows = await db.rows<SessionRow>(`SELECT ${COLUMNS} FROM sessions s ${walk} ORDER BY s.seq DESC LIMIT ${param(args, limit)} OFFSET ${param(args, offset)}`, args);
          const cargs: Arg[] = [pattern];
          const cwalk = `${sessionWhere(filters, cargs) || 'WHERE true'} AND EXISTS (SELECT 1 FROM session_text WHERE session_id = s.id AND ${MATCHES})`;
          const n = (await db.one<{ n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM sessions s ${cwalk} LIMIT ${param(cargs, tuning.countBudget + 1)}) AS x`, cargs))!.n;
          const hits = await firstHits(ctx, q.text, rows.map((r) => r.id));
          const items = rows.map((r) => ({ session: toRecord(r), hit: hits.get(r.id) ?? null }));
          if (n <= tuning.countBudget) return { items, total: n, exact: true };
          return { items, total: Math.max(tuning.countBudget, offset + rows.length), exact: false };
        }
        // A rarer word: the sessions whose text matches come from the trigram index (work in
        // proportion to the matching chunks, never to the table), then meet the filters; exact count.
        const args: Arg[] = [pattern];
        const where = sessionWhere(filters, args);
        const matched = `WITH m AS MATERIALIZED (SELECT DISTINCT session_id FROM session_text WHERE ${MATCHES})
          SELECT ${COLUMNS}, count(*) OVER () AS total FROM sessions s JOIN m ON m.session_id = s.id ${where}`;
        // Newest first in the order sessions opened, as SQLite's text search (seq is unique: stable pages).
        const rows = await db.rows<SessionRow>(`${matched} ORDER BY s.seq DESC LIMIT ${param(args, limit)} OFFSET ${param(args, offset)}`, args);
        let total = rows[0]?.total;
        if (total === undefined) {
          const cargs: Arg[] = [likeSubstring(q.text)];
          const cwhere = sessionWhere(filters, cargs);
          total = (await db.one<{ n: number }>(`WITH m AS MATERIALIZED (SELECT DISTINCT session_id FROM session_text WHERE ${MATCHES})
            SELECT count(*) AS n FROM sessions s JOIN m ON m.session_id = s.id ${cwhere}`, cargs))!.n;
        }
        const hits = await firstHits(ctx, q.text, rows.map((r) => r.id));
        return { items: rows.map((r) => ({ session: toRecord(r), hit: hits.get(r.id) ?? null })), total, exact: true };
      }, { snapshot: true });
    },
    async get(id) {
      const r = await db.one<SessionRow>(`SELECT ${COLUMNS} FROM sessions s WHERE s.id = $1`, [id]);
      return r ? toRecord(r) : null;
    },
    async channels(id) {
      const rows = await db.rows<{
        session_id: string; channel: number; kind: string; command: string | null; pty: boolean; host_name: string | null; login: string | null;
        started_at: number; ended_at: number | null; exit_status: number | null; exit_signal: string | null;
        stdin_bytes: number; stdout_bytes: number; stderr_bytes: number;
      }>('SELECT * FROM channels WHERE session_id = $1 ORDER BY channel', [id]);
      return rows.map((r): ChannelRecord => ({
        sessionId: r.session_id, channel: r.channel, kind: r.kind, command: r.command, pty: r.pty,
        host: r.host_name, login: r.login, stdinBytes: r.stdin_bytes, stdoutBytes: r.stdout_bytes, stderrBytes: r.stderr_bytes,
        startedAt: r.started_at, endedAt: r.ended_at, exitStatus: r.exit_status, exitSignal: r.exit_signal,
      }));
    },
  };
}

/**
 * A common word under filters that keep few sessions: the filter's index gives those sessions (at
 * most `smallFilter`, else null: walk instead), each is checked for the text, and the page is cut
 * from the matches in open order. Work in proportion to the filtered sessions, never to the table.
 */
async function filteredFirst({ db }: Ctx, filters: Conditions, pattern: string, limit: number, offset: number, smallFilter: number): Promise<{ rows: SessionRow[]; total: number } | null> {
  const cargs: Arg[] = [];
  const cwhere = sessionWhere(filters, cargs);
  if (cwhere === '') return null;
  const n = (await db.one<{ n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM sessions s ${cwhere} LIMIT ${param(cargs, smallFilter + 1)}) AS x`, cargs))!.n;
  if (n > smallFilter) return null;
  const args: Arg[] = [pattern];
  const where = sessionWhere(filters, args);
  // No ORDER BY nor LIMIT here: the planner starts from the filter's index, not from the newest session.
  const matched = await db.rows<{ id: string; seq: string }>(
    `SELECT s.id, s.seq FROM sessions s ${where} AND EXISTS (SELECT 1 FROM session_text WHERE session_id = s.id AND ${MATCHES})`, args);
  const page = matched.sort((a, b) => Number(b.seq) - Number(a.seq)).slice(offset, offset + limit).map((r) => r.id);
  const rows = page.length === 0 ? [] : await db.rows<SessionRow>(`SELECT ${COLUMNS} FROM sessions s WHERE s.id = ANY($1::text[]) ORDER BY s.seq DESC`, [page]);
  return { rows, total: matched.length };
}

/** Where the text first appears in each of these sessions (one page): the lowest matching channel, its earliest chunk. */
async function firstHits({ db }: Ctx, text: string, ids: string[]): Promise<Map<string, SessionHit>> {
  const hits = new Map<string, SessionHit>();
  if (ids.length === 0) return hits;
  const rows = await db.rows<{ session_id: string; channel: number; t: number; chunk: string }>(
    `SELECT DISTINCT ON (session_id) session_id, channel, t, chunk FROM session_text
     WHERE ${MATCHES} AND session_id = ANY($2::text[]) ORDER BY session_id, channel, t, id`, [likeSubstring(text), ids]);
  for (const r of rows) hits.set(r.session_id, { channel: Number(r.channel), t: Number(r.t), ...hitLine(r.chunk, text) });
  return hits;
}
