import { notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import { cleanText, type Ctx } from './db.js';

/**
 * User input as an ILIKE pattern that matches it as a literal substring (never a pattern of its own):
 * case-insensitive, as SQLite's FTS5 trigram tokenizer is; the pg_trgm GIN index serves it.
 */
export function likeSubstring(text: string): string {
  return `%${cleanText(text).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
export const MATCHES = "chunk ILIKE $1 ESCAPE '\\'";

export function searchTable(ctx: Ctx): Store['search'] {
  const { db } = ctx;
  const append = async (sessionId: string, channel: number, chunks: { t: number; text: string }[]) => {
    // The row lock orders this against a reindex of the same session on another connection.
    if (!await db.one('SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE', [sessionId])) throw notFound(`no session "${sessionId}" to index text for`);
    if (chunks.length === 0) return;
    await db.run('INSERT INTO session_text (session_id, channel, t, chunk) SELECT $1, $2, x.t, x.chunk FROM unnest($3::float8[], $4::text[]) AS x(t, chunk)',
      [sessionId, channel, chunks.map((c) => c.t), chunks.map((c) => cleanText(c.text))]);
  };
  return {
    async index(sessionId, channel, chunks) {
      await ctx.tx(() => append(sessionId, channel, chunks));
    },
    async reindex(sessionId, channel, chunks) {
      // One transaction: a search sees the steps or the exact text, never neither.
      await ctx.tx(async () => {
        await db.run('DELETE FROM session_text WHERE session_id = $1 AND channel = $2', [sessionId, channel]);
        await append(sessionId, channel, chunks);
      });
    },
    async find(text, limit) {
      const rows = await db.rows<{ session_id: string; channel: number; t: number }>(
        `SELECT session_id, channel, min(t) AS t FROM session_text WHERE ${MATCHES} GROUP BY session_id, channel ORDER BY max(id) DESC LIMIT $2`,
        [likeSubstring(text), limit]);
      return rows.map((r) => ({ sessionId: r.session_id, channel: Number(r.channel), t: Number(r.t) }));
    },
  };
}

export function webSessionsTable({ db }: Ctx): Store['webSessions'] {
  return {
    async get(sid, now) {
      const r = await db.one<{ data: string; expires_at: number }>('SELECT data, expires_at FROM web_sessions WHERE sid = $1', [sid]);
      if (!r) return null;
      if (r.expires_at <= now) {
        await db.run('DELETE FROM web_sessions WHERE sid = $1', [sid]);
        return null;
      }
      return JSON.parse(r.data) as Record<string, unknown>;
    },
    async set(sid, data, expiresAt) {
      await db.run('INSERT INTO web_sessions (sid, data, expires_at) VALUES ($1, $2, $3) ON CONFLICT (sid) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at',
        [sid, JSON.stringify(data), expiresAt]);
    },
    async destroy(sid) {
      await db.run('DELETE FROM web_sessions WHERE sid = $1', [sid]);
    },
    async purgeExpired(now) {
      return db.run('DELETE FROM web_sessions WHERE expires_at <= $1', [now]);
    },
  };
}
