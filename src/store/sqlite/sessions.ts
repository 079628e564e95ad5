import os from 'node:os';
import { invalid } from '../../shared/errors.js';
import { hitLine, MIN_SEARCH_CHARS, sessionStatus, type ChannelRecord, type SessionFilter, type SessionHit, type SessionOpen, type SessionQuery, type Store } from '../types.js';
import { toSessionRecord as toRecord, type SessionRow as BaseSessionRow } from '../rows.js';
import type { Ctx, DB } from './db.js';
import { MAX_FILE_FILTER } from './files.js';
import { ftsPhrase, TEXT_KEY_SHIFT } from './search.js';

/** text_key: the session's key in the text index (search.ts). */
interface SessionRow extends BaseSessionRow { text_key: number | null }

/** The filters of list, count and query. Every one is served by an index (migration 8). */
type Conditions = SessionFilter & { until?: number | undefined; text?: string | undefined };

/** The conditions, and the same joined as a WHERE clause ('' when there are none). */
function sessionWhere(f: Conditions): { where: string; conditions: string[]; args: (string | number)[] } {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (f.live) where.push('ended_at IS NULL');
  if (f.user !== undefined) { where.push('user_name = ?'); args.push(f.user); }
  if (f.host !== undefined) { where.push('host_name = ?'); args.push(f.host); }
  if (f.since !== undefined) { where.push('started_at >= ?'); args.push(f.since); }
  if (f.until !== undefined) { where.push('started_at < ?'); args.push(f.until); }
  if (f.ids !== undefined) {
    where.push(f.ids.length ? `id IN (${f.ids.map(() => '?').join(',')})` : '0');
    args.push(...f.ids);
  }
  if (f.status !== undefined) { where.push('status = ?'); args.push(f.status); }
  if (f.file !== undefined) {
    // instr: a literal substring, never a LIKE pattern a path could smuggle in.
    where.push('id IN (SELECT session_id FROM transferred_files WHERE instr(path, ?) > 0)');
    args.push(f.file.slice(0, MAX_FILE_FILTER));
  }
  if (f.text !== undefined) {
    // The distinct sessions whose text matches, read from the chunks' rowids (no stored text is
    // loaded), meet the other filters through sessions_text_key.
    where.push(`text_key IN (SELECT rowid >> ${TEXT_KEY_SHIFT} FROM session_text WHERE session_text MATCH ?)`);
    args.push(ftsPhrase(f.text));
  }
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', conditions: where, args };
}

/** Newest first; rowid breaks ties in started_at so that offset paging never skips or repeats a row. */
const NEWEST_FIRST = 'ORDER BY started_at DESC, rowid DESC';

/** The statements of sessions.query (exported so a test can check their plans). */
export function querySql(q: Omit<SessionQuery, 'limit' | 'offset'>, order = NEWEST_FIRST): { page: string; count: string; args: (string | number)[] } {
  const { where, args } = sessionWhere({ text: q.text, user: q.user, host: q.host, since: q.since, until: q.until, status: q.status, file: q.file });
  return { page: `SELECT * FROM sessions ${where} ${order} LIMIT ? OFFSET ?`, count: `SELECT count(*) AS n FROM sessions ${where}`, args };
}

/**
 * The one INSERT of a session row (sessions.open and logins.openSession). One statement: the next
 * text_key is taken under the write lock, whichever process opens.
 */
export function insertSession(db: DB, s: SessionOpen, now: number): void {
  db.prepare(`INSERT INTO sessions (id, user_name, key_fingerprint, source_addr, mode, started_at, node, text_key)
    VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(text_key), 0) + 1 FROM sessions))`)
    .run(s.id, s.user, s.keyFingerprint, s.sourceAddr, s.mode, now, s.node ?? os.hostname());
}

const pageSize = (n: number, what: string) => {
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${what} must be a whole number, 0 or more`);
  return n;
};

export function sessionsTable(ctx: Ctx, tuning: SearchTuning = DEFAULT_TUNING): Store['sessions'] {
  const { db, clock } = ctx;
  return {
    async open(s) {
      insertSession(db, s, clock.now());
    },
    async setTarget(id, host, login, grantId) {
      // The first target a connection reaches names the session; later channels are in the channels table.
      db.prepare('UPDATE sessions SET host_name = ?, login = ?, grant_id = ? WHERE id = ? AND host_name IS NULL').run(host, login, grantId, id);
    },
    async close(id, reason, bytesUp, bytesDown) {
      const now = clock.now();
      db.prepare('UPDATE sessions SET ended_at = ?, end_reason = ?, status = ?, bytes_up = ?, bytes_down = ? WHERE id = ? AND ended_at IS NULL')
        .run(now, reason, sessionStatus({ endedAt: now, endReason: reason }), bytesUp, bytesDown, id);
      const r = db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE id = ?').get(id);
      return r ? toRecord(r) : null;
    },
    async closeInterrupted(node = os.hostname()) {
      // Another node's live sessions are its own business, never "left over" from this one's crash.
      const mine = 'ended_at IS NULL AND (node = ? OR node IS NULL)';
      return db.transaction(() => {
        const ids = db.prepare<[string], { id: string }>(`SELECT id FROM sessions WHERE ${mine}`).all(node).map((r) => r.id);
        const now = clock.now();
        db.prepare(`UPDATE channels SET ended_at = ? WHERE ended_at IS NULL AND session_id IN (SELECT id FROM sessions WHERE ${mine})`).run(now, node);
        db.prepare(`UPDATE sessions SET ended_at = ?, end_reason = 'interrupted', status = 'interrupted' WHERE ${mine}`).run(now, node);
        return ids;
      }).immediate();
    },
    async countLive(user) {
      return db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM sessions WHERE user_name = ? AND ended_at IS NULL').get(user)!.n;
    },
    async bytesRelayed() {
      return db.prepare<[], { n: number | null }>('SELECT sum(bytes_up + bytes_down) AS n FROM sessions WHERE ended_at IS NOT NULL').get()!.n ?? 0;
    },
    async openChannel(c) {
      db.prepare('INSERT INTO channels (session_id, channel, kind, command, pty, host_name, login, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(c.sessionId, c.channel, c.kind, c.command, c.pty ? 1 : 0, c.host, c.login, clock.now());
    },
    async closeChannel(c) {
      db.prepare(`UPDATE channels SET ended_at = ?, exit_status = ?, exit_signal = ?, stdin_bytes = ?, stdout_bytes = ?, stderr_bytes = ?,
        stdin_sha256 = ?, stdout_sha256 = ?, stderr_sha256 = ? WHERE session_id = ? AND channel = ?`)
        .run(clock.now(), c.exitStatus, c.exitSignal, c.stdinBytes, c.stdoutBytes, c.stderrBytes,
          c.stdinSha256, c.stdoutSha256, c.stderrSha256, c.sessionId, c.channel);
    },
    async list(f) {
      const { where, args } = sessionWhere(f);
      const sql = `SELECT * FROM sessions ${where} ${NEWEST_FIRST} LIMIT ? OFFSET ?`;
      return db.prepare<(string | number)[], SessionRow>(sql).all(...args, f.limit ?? 1000, f.offset ?? 0).map(toRecord);
    },
    async count(f) {
      const { where, args } = sessionWhere(f);
      return db.prepare<(string | number)[], { n: number }>(`SELECT count(*) AS n FROM sessions ${where}`).get(...args)!.n;
    },
    async query(q) {
      if (q.text !== undefined && [...q.text].length < MIN_SEARCH_CHARS) throw invalid(`search text needs at least ${MIN_SEARCH_CHARS} characters`);
      const limit = pageSize(q.limit, 'limit');
      const offset = pageSize(q.offset, 'offset');
      // One read transaction: the page, the count and the hits come from the same snapshot.
      const read = db.transaction(() => {
        const found = q.text === undefined ? filtered(ctx, q, limit, offset, tuning) : textSearch(ctx, { ...q, text: q.text }, limit, offset, tuning);
        const hits = q.text !== undefined && found.rows.length > 0 ? firstHits(ctx, q.text, found.rows) : new Map<string, SessionHit>();
        return { ...found, hits };
      });
      const { rows, total, exact, hits } = read.deferred();
      return { items: rows.map((r) => ({ session: toRecord(r), hit: hits.get(r.id) ?? null })), total, exact };
    },
    async get(id) {
      const r = db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE id = ?').get(id);
      return r ? toRecord(r) : null;
    },
    async channels(id) {
      return db
        .prepare<[string], {
          session_id: string; channel: number; kind: string; command: string | null; pty: number; host_name: string | null; login: string | null;
          started_at: number; ended_at: number | null; exit_status: number | null; exit_signal: string | null;
          stdin_bytes: number; stdout_bytes: number; stderr_bytes: number;
        }>('SELECT * FROM channels WHERE session_id = ? ORDER BY channel')
        .all(id)
        .map((r): ChannelRecord => ({
          sessionId: r.session_id, channel: r.channel, kind: r.kind, command: r.command, pty: r.pty === 1,
          host: r.host_name, login: r.login, stdinBytes: r.stdin_bytes, stdoutBytes: r.stdout_bytes, stderrBytes: r.stderr_bytes,
          startedAt: r.started_at, endedAt: r.ended_at, exitStatus: r.exit_status, exitSignal: r.exit_signal,
        }));
    },
  };
}

/**
 * Filters alone: the filter's index gives the order and the page. The count reads the index up to
 * `countCap` rows (a million sessions would cost a scan per page view); past it, "at least".
 */
function filtered({ db }: Ctx, q: Omit<SessionQuery, 'text'>, limit: number, offset: number, tuning: SearchTuning) {
  const sql = querySql(q);
  const { where, args } = sessionWhere(q);
  const rows = db.prepare<(string | number)[], SessionRow>(sql.page).all(...sql.args, limit, offset);
  const n = db.prepare<(string | number)[], { n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM sessions ${where} LIMIT ?)`).get(...args, tuning.countCap + 1)!.n;
  if (n <= tuning.countCap) return { rows, total: n, exact: true };
  return { rows, total: Math.max(tuning.countCap, offset + rows.length), exact: false };
}

/**
 * How a text search spends its work (a store option so that a test can make every path run on a
 * small data set).
 */
export interface SearchTuning {
  /** Filters matching at most this many sessions are met first, then the text (SQL path, exact). */
  smallFilter: number;
  /** Matching chunks read past the page to count; beyond, the total is a lower bound. */
  countBudget: number;
  /** Sessions counted for a list without text; beyond, the total is a lower bound. */
  countCap: number;
}
export const DEFAULT_TUNING: SearchTuning = { smallFilter: 5000, countBudget: 3000, countCap: 100_000 };

/**
 * Text and filters. Results are newest first in the order sessions opened (text_key), one order on
 * every path, so paging never skips or repeats a row. Two plans, chosen by the filters' size:
 * - few sessions pass the filters: the filter's index meets the set of matching sessions in SQL;
 *   exact count;
 * - otherwise (or no filter): matching chunks are read newest first (FTS5 in rowid order, rowids are
 *   text_key << 24 + n), each new session checked against the filters by its key, and reading stops
 *   once the page is full and the count budget spent. A common word fills the page after a few
 *   hundred chunks whatever the table's size; the count is exact when the matches ran out within the
 *   budget, else a lower bound (`exact: false`, shown as "at least").
 */
function textSearch(ctx: Ctx, q: Omit<SessionQuery, 'limit' | 'offset'> & { text: string }, limit: number, offset: number, tuning: SearchTuning) {
  const { db } = ctx;
  const { text, ...rest } = q;
  const f = sessionWhere(rest);
  const phrase = ftsPhrase(text);
  if (f.where !== '') {
    const few = db.prepare<(string | number)[], { n: number }>(`SELECT count(*) AS n FROM (SELECT 1 FROM sessions ${f.where} LIMIT ?)`).get(...f.args, tuning.smallFilter + 1)!.n;
    if (few <= tuning.smallFilter) {
      const sql = querySql(q, 'ORDER BY text_key DESC');
      const rows = db.prepare<(string | number)[], SessionRow>(sql.page).all(...sql.args, limit, offset);
      const total = db.prepare<(string | number)[], { n: number }>(sql.count).get(...sql.args)!.n;
      return { rows, total, exact: true };
    }
  }
  // Sessions are checked against the filters a batch of keys at a time (one statement per batch), by
  // key: left to itself the planner may scan a filter's index once per batch.
  const pass = db.prepare<(string | number)[], number>(
    `SELECT text_key FROM sessions INDEXED BY sessions_text_key WHERE ${['text_key IN (SELECT value FROM json_each(?))', ...f.conditions].join(' AND ')}`,
  ).pluck();
  const chunks = db.prepare<[string], number>(`SELECT rowid >> ${TEXT_KEY_SHIFT} FROM session_text WHERE session_text MATCH ? ORDER BY rowid DESC`).pluck();
  const page: number[] = [];
  let matched = 0;
  let batch: number[] = [];
  const check = () => {
    if (batch.length === 0) return;
    const ok = new Set(pass.all(JSON.stringify(batch), ...f.args));
    for (const k of batch) {
      if (!ok.has(k)) continue;
      if (matched >= offset && page.length < limit) page.push(k);
      matched++;
    }
    batch = [];
  };
  let last = -1;
  let spent = 0;
  let exact = true;
  for (const key of chunks.iterate(phrase)) {
    if (page.length === limit && ++spent > tuning.countBudget) { exact = false; break; }
    if (key === last || key === 0) continue;
    last = key;
    batch.push(key);
    // Small batches while the page fills (a common word fills it within the first few hundred), large ones to count.
    if (batch.length >= (page.length < limit ? 64 : 1024)) check();
  }
  check();
  const rows = page.length === 0 ? [] : db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE text_key IN (SELECT value FROM json_each(?)) ORDER BY text_key DESC').all(JSON.stringify(page));
  return { rows, total: matched, exact };
}

/**
 * Where the text first appears in each of these sessions (one page of them): the lowest matching
 * channel and its earliest chunk. Rowids pick the page's chunks; only those are read and grouped.
 */
function firstHits({ db }: Ctx, text: string, rows: SessionRow[]): Map<string, SessionHit> {
  const idOf = new Map(rows.filter((r) => r.text_key !== null).map((r) => [r.text_key!, r.id]));
  const hits = new Map<string, SessionHit>();
  const keys = [...idOf.keys()].sort((a, b) => a - b);
  // min(t) makes the bare `chunk` column that of the earliest matching chunk (SQLite's rule for min/max).
  // The rowid range is what FTS5 can seek on: the chunks of the keys from lo to hi (a page's keys lie
  // close together), never every match of a common word. Groups keep an export's ranges small too.
  const inRange = db.prepare<[string, number, number], { k: number; channel: number; t: number; chunk: string }>(
    `SELECT rowid >> ${TEXT_KEY_SHIFT} AS k, channel, min(t) AS t, chunk FROM session_text
     WHERE session_text MATCH ? AND rowid BETWEEN (? << ${TEXT_KEY_SHIFT}) AND ((? + 1) << ${TEXT_KEY_SHIFT}) - 1 GROUP BY k, channel`,
  );
  for (let i = 0; i < keys.length; i += 100) {
    const group = keys.slice(i, i + 100);
    const found = inRange.all(ftsPhrase(text), group[0]!, group.at(-1)!);
    for (const r of found) {
      const id = idOf.get(r.k);
      if (id === undefined) continue;
      const hit = { channel: Number(r.channel), t: Number(r.t), ...hitLine(r.chunk, text) };
      const seen = hits.get(id);
      if (!seen || hit.channel < seen.channel) hits.set(id, hit);
    }
  }
  return hits;
}
