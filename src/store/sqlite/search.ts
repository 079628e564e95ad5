import type { Store } from '../types.js';
import type { Ctx } from './db.js';

/** FTS5 with the trigram tokenizer: substring search ("tc/shad" finds /etc/shadow). */
export function searchTable({ db }: Ctx): Store['search'] {
  const insert = db.prepare('INSERT INTO session_text (session_id, channel, t, chunk) VALUES (?, ?, ?, ?)');
  return {
    async index(sessionId, channel, chunks) {
      db.transaction(() => { for (const c of chunks) insert.run(sessionId, channel, c.t, c.text); })();
    },
    async find(text, limit) {
      // User input never reaches MATCH syntax: it is one quoted phrase.
      const phrase = `"${text.replaceAll('"', '""')}"`;
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
