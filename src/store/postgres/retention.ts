import { draft } from '../../audit/events.js';
import { isoTime } from '../../shared/clock.js';
import { invalid, notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import type { Ctx } from './db.js';
import { toRecording, type RecordingRow } from './recordings.js';

interface SessionHold { id: string; user_name: string; hold_reason: string | null; held_by: string | null; held_at: number | null }

/**
 * Retention and legal hold (see the SQLite module for the order of steps). The session row is locked
 * while a recording is marked deleted, so a hold placed meanwhile by another node or the CLI wins.
 */
export function retentionTable(ctx: Ctx): Store['retention'] {
  const { db } = ctx;
  const session = (id: string, lock = false) =>
    db.one<SessionHold>(`SELECT id, user_name, hold_reason, held_by, held_at FROM sessions WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
  const mustGet = async (id: string) => {
    const s = await session(id, true);
    if (!s) throw notFound(`no session "${id}"`, 'list sessions with: gatehouse sessions list');
    return s;
  };
  return {
    async hold(id, reason, meta) {
      if (reason.trim() === '') throw invalid('a legal hold needs a reason', 'e.g. --reason "case 2026-114"');
      await ctx.change(async (now) => {
        const s = await mustGet(id);
        await db.run('UPDATE sessions SET hold_reason = $1, held_by = $2, held_at = $3 WHERE id = $4', [reason, meta.actor, now, id]);
        return { result: undefined, events: [draft('admin.session.hold', meta.actor, { session: id, user: s.user_name, reason })] };
      });
    },
    async release(id, meta) {
      await ctx.change(async () => {
        const s = await mustGet(id);
        if (s.hold_reason === null) throw invalid(`session ${id} is not on hold`);
        await db.run('UPDATE sessions SET hold_reason = NULL, held_by = NULL, held_at = NULL WHERE id = $1', [id]);
        return { result: undefined, events: [draft('admin.session.release', meta.actor, { session: id, user: s.user_name })] };
      });
    },
    async holdOf(id) {
      const s = await session(id);
      return s && s.hold_reason !== null ? { reason: s.hold_reason, by: s.held_by ?? '', at: s.held_at ?? 0 } : null;
    },
    async held() {
      return (await db.rows<SessionHold & { hold_reason: string }>(
        'SELECT id, user_name, hold_reason, held_by, held_at FROM sessions WHERE hold_reason IS NOT NULL ORDER BY held_at, id'))
        .map((r) => ({ sessionId: r.id, user: r.user_name, reason: r.hold_reason, by: r.held_by ?? '', at: r.held_at ?? 0 }));
    },
    async expired(before, limit) {
      return (await db.rows<RecordingRow>(`SELECT r.* FROM recordings r JOIN sessions s ON s.id = r.session_id
        WHERE r.seq IS NOT NULL AND r.deleted_at IS NULL AND s.ended_at IS NOT NULL AND s.ended_at < $1 AND s.hold_reason IS NULL
        ORDER BY r.seq LIMIT $2`, [before, limit])).map(toRecording);
    },
    async deleted() {
      return (await db.rows<RecordingRow>('SELECT * FROM recordings WHERE deleted_at IS NOT NULL AND purged_at IS NULL ORDER BY seq')).map(toRecording);
    },
    async purged(sessionId, channel) {
      await db.run('UPDATE recordings SET purged_at = $1 WHERE session_id = $2 AND channel = $3 AND deleted_at IS NOT NULL AND purged_at IS NULL',
        [ctx.clock.now(), sessionId, channel]);
    },
    async markDeleted(sessionId, channel, meta) {
      return ctx.change(async (now) => {
        const s = await session(sessionId, true);
        const r = await db.one<RecordingRow>('SELECT * FROM recordings WHERE session_id = $1 AND channel = $2 FOR UPDATE', [sessionId, channel]);
        if (!s || !r || s.hold_reason !== null || r.deleted_at !== null || r.seq === null) return { result: false, events: [] };
        await db.run('UPDATE recordings SET deleted_at = $1 WHERE session_id = $2 AND channel = $3', [now, sessionId, channel]);
        // The searchable text is a copy of the recording: it goes with it.
        await db.run('DELETE FROM session_text WHERE session_id = $1 AND channel = $2', [sessionId, channel]);
        return {
          result: true,
          events: [draft('recording.deleted', meta.actor, {
            session: sessionId, channel, user: s.user_name, file: r.path, sha256: r.sha256 ?? '', seq: r.seq, reason: 'retention', endedAt: isoTime(r.ended_at ?? now),
          })],
        };
      });
    },
  };
}
