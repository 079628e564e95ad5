import { draft } from '../../audit/events.js';
import { isoTime } from '../../shared/clock.js';
import { invalid, notFound } from '../../shared/errors.js';
import type { RecordingRecord, Store } from '../types.js';
import type { Ctx } from './db.js';
import { TEXT_KEY_SHIFT } from './search.js';

interface Row {
  session_id: string; channel: number; path: string; kind: string; state: string; truncated: number; size: number | null;
  sha256: string | null; seq: number | null; prev_hash: string | null; chain_hash: string | null; signature: string | null;
  started_at: number; ended_at: number | null; deleted_at: number | null;
}

const toRecord = (r: Row): RecordingRecord => ({
  sessionId: r.session_id, channel: r.channel, path: r.path, kind: r.kind as RecordingRecord['kind'], state: r.state as RecordingRecord['state'],
  truncated: r.truncated === 1, size: r.size, sha256: r.sha256, seq: r.seq, prevHash: r.prev_hash, chainHash: r.chain_hash,
  signature: r.signature, startedAt: r.started_at, endedAt: r.ended_at, deletedAt: r.deleted_at,
});

/**
 * Retention and legal hold. A recording is deleted by marking its row (which keeps its hash and its
 * place in the signed chain) and appending recording.deleted in the same transaction; the file is
 * removed after that, so a crash in between leaves a marked row and a file to remove again, never
 * an unexplained missing file. The hold is checked inside that transaction: a hold placed by the
 * CLI while the server sweeps wins.
 */
export function retentionTable(ctx: Ctx): Store['retention'] {
  const { db } = ctx;
  const session = db.prepare<[string], { id: string; user_name: string; hold_reason: string | null; held_by: string | null; held_at: number | null; text_key: number | null }>(
    'SELECT id, user_name, hold_reason, held_by, held_at, text_key FROM sessions WHERE id = ?');
  const mustGet = (id: string) => {
    const s = session.get(id);
    if (!s) throw notFound(`no session "${id}"`, 'list sessions with: gatehouse sessions list');
    return s;
  };
  return {
    async hold(id, reason, meta) {
      if (reason.trim() === '') throw invalid('a legal hold needs a reason', 'e.g. --reason "case 2026-114"');
      ctx.change((now) => {
        const s = mustGet(id);
        db.prepare('UPDATE sessions SET hold_reason = ?, held_by = ?, held_at = ? WHERE id = ?').run(reason, meta.actor, now, id);
        return { result: undefined, events: [draft('admin.session.hold', meta.actor, { session: id, user: s.user_name, reason })] };
      });
    },
    async release(id, meta) {
      ctx.change(() => {
        const s = mustGet(id);
        if (s.hold_reason === null) throw invalid(`session ${id} is not on hold`);
        db.prepare('UPDATE sessions SET hold_reason = NULL, held_by = NULL, held_at = NULL WHERE id = ?').run(id);
        return { result: undefined, events: [draft('admin.session.release', meta.actor, { session: id, user: s.user_name })] };
      });
    },
    async holdOf(id) {
      const s = session.get(id);
      return s && s.hold_reason !== null ? { reason: s.hold_reason, by: s.held_by ?? '', at: s.held_at ?? 0 } : null;
    },
    async held() {
      return db.prepare<[], { id: string; user_name: string; hold_reason: string; held_by: string | null; held_at: number | null }>(
        'SELECT id, user_name, hold_reason, held_by, held_at FROM sessions WHERE hold_reason IS NOT NULL ORDER BY held_at, id').all()
        .map((r) => ({ sessionId: r.id, user: r.user_name, reason: r.hold_reason, by: r.held_by ?? '', at: r.held_at ?? 0 }));
    },
    async expired(before, limit) {
      return db.prepare<[number, number], Row>(`SELECT r.* FROM recordings r JOIN sessions s ON s.id = r.session_id
        WHERE r.seq IS NOT NULL AND r.deleted_at IS NULL AND s.ended_at IS NOT NULL AND s.ended_at < ? AND s.hold_reason IS NULL
        ORDER BY r.seq LIMIT ?`).all(before, limit).map(toRecord);
    },
    async deleted() {
      return db.prepare<[], Row>('SELECT * FROM recordings WHERE deleted_at IS NOT NULL AND purged_at IS NULL ORDER BY seq').all().map(toRecord);
    },
    async purged(sessionId, channel) {
      // Not a policy change and not audited: recording.deleted already says the recording is gone.
      db.prepare('UPDATE recordings SET purged_at = ? WHERE session_id = ? AND channel = ? AND deleted_at IS NOT NULL AND purged_at IS NULL')
        .run(ctx.clock.now(), sessionId, channel);
    },
    async markDeleted(sessionId, channel, meta) {
      return ctx.change((now) => {
        const s = session.get(sessionId);
        const r = db.prepare<[string, number], Row>('SELECT * FROM recordings WHERE session_id = ? AND channel = ?').get(sessionId, channel);
        if (!s || !r || s.hold_reason !== null || r.deleted_at !== null || r.seq === null) return { result: false, events: [] };
        db.prepare('UPDATE recordings SET deleted_at = ? WHERE session_id = ? AND channel = ?').run(now, sessionId, channel);
        // The searchable text is a copy of the recording: it goes with it.
        if (s.text_key !== null) {
          db.prepare(`DELETE FROM session_text WHERE rowid BETWEEN (? << ${TEXT_KEY_SHIFT}) AND ((? + 1) << ${TEXT_KEY_SHIFT}) - 1 AND channel = ?`)
            .run(s.text_key, s.text_key, channel);
        }
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
