import { notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import type { Ctx } from './db.js';

/** User input never reaches MATCH syntax: it is one quoted phrase (a literal substring for trigram). */
export function ftsPhrase(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

/**
 * session_text rowids are (sessions.text_key << TEXT_KEY_SHIFT) + n (migration 8): which sessions match
 * is read from the rowids, without loading any stored text.
 */
export const TEXT_KEY_SHIFT = 24;
/** Chunks one session can hold (about 16 GiB of text at a kilobyte a chunk; recordings index 32 MiB a channel). */
const MAX_CHUNKS = 2 ** TEXT_KEY_SHIFT - 1;

/** FTS5 with the trigram tokenizer: substring search ("tc/shad" finds /etc/shadow). */
export function searchTable({ db }: Ctx): Store['search'] {
  const keyOf = db.prepare<[string], { text_key: number | null; text_chunks: number }>('SELECT text_key, text_chunks FROM sessions WHERE id = ?');
  const insert = db.prepare(`INSERT INTO session_text (rowid, session_id, channel, t, chunk) VALUES ((? << ${TEXT_KEY_SHIFT}) + ?, ?, ?, ?, ?)`);
  const counted = db.prepare('UPDATE sessions SET text_chunks = ? WHERE id = ?');
  // A channel's chunks are found by the session's rowid range (FTS5 seeks rowid ranges), then its channel.
  const dropChannel = db.prepare(`DELETE FROM session_text WHERE rowid BETWEEN (? << ${TEXT_KEY_SHIFT}) AND ((? + 1) << ${TEXT_KEY_SHIFT}) - 1 AND channel = ?`);
  const append = (sessionId: string, channel: number, chunks: { t: number; text: string }[]) => {
    const s = keyOf.get(sessionId);
    if (!s || s.text_key === null) throw notFound(`no session "${sessionId}" to index text for`);
    // Numbers are never reused (a reindex leaves gaps): a rowid names one chunk for good.
    const take = chunks.slice(0, Math.max(0, MAX_CHUNKS - s.text_chunks));
    take.forEach((c, i) => insert.run(s.text_key, s.text_chunks + i + 1, sessionId, channel, c.t, c.text));
    counted.run(s.text_chunks + take.length, sessionId);
    return s.text_key;
  };
  return {
    async index(sessionId, channel, chunks) {
      db.transaction(() => { append(sessionId, channel, chunks); }).immediate();
    },
    async reindex(sessionId, channel, chunks) {
      db.transaction(() => {
        const s = keyOf.get(sessionId);
        if (s?.text_key != null) dropChannel.run(s.text_key, s.text_key, channel);
        append(sessionId, channel, chunks);
      }).immediate();
    },
    async find(text, limit) {
      const phrase = ftsPhrase(text);
      return db.prepare<[string, number], { session_id: string; channel: number; t: number }>(
        `SELECT session_id, channel, min(t) AS t FROM session_text WHERE session_text MATCH ? GROUP BY session_id, channel ORDER BY rowid DESC LIMIT ?`,
      ).all(phrase, limit).map((r) => ({ sessionId: r.session_id, channel: Number(r.channel), t: Number(r.t) }));
    },
  };
}

export function webSessionsTable({ db }: Ctx): Store['webSessions'] {
  return {
    async get(sid, now) {
      const r = db.prepare<[string], { data: string; expires_at: number }>('SELECT data, expires_at FROM web_sessions WHERE sid = ?').get(sid);
      if (!r) return null;
      if (r.expires_at <= now) {
        db.prepare('DELETE FROM web_sessions WHERE sid = ?').run(sid);
        return null;
      }
      return JSON.parse(r.data) as Record<string, unknown>;
    },
    async set(sid, data, expiresAt) {
      db.prepare('INSERT INTO web_sessions (sid, data, expires_at) VALUES (?, ?, ?) ON CONFLICT(sid) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at')
        .run(sid, JSON.stringify(data), expiresAt);
    },
    async destroy(sid) {
      db.prepare('DELETE FROM web_sessions WHERE sid = ?').run(sid);
    },
    async purgeExpired(now) {
      return db.prepare('DELETE FROM web_sessions WHERE expires_at <= ?').run(now).changes;
    },
  };
}
