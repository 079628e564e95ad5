import type { ChannelRecord, SessionRecord, Store } from '../types.js';
import type { Ctx } from './db.js';

interface SessionRow {
  id: string;
  user_name: string;
  key_fingerprint: string | null;
  source_addr: string;
  host_name: string | null;
  login: string | null;
  mode: string;
  grant_id: number | null;
  started_at: number;
  ended_at: number | null;
  end_reason: string | null;
  bytes_up: number;
  bytes_down: number;
}

const toRecord = (r: SessionRow): SessionRecord => ({
  id: r.id, user: r.user_name, keyFingerprint: r.key_fingerprint, sourceAddr: r.source_addr, host: r.host_name,
  login: r.login, mode: r.mode, grantId: r.grant_id, startedAt: r.started_at, endedAt: r.ended_at,
  endReason: r.end_reason, bytesUp: r.bytes_up, bytesDown: r.bytes_down,
});

export function sessionsTable(ctx: Ctx): Store['sessions'] {
  const { db } = ctx;
  return {
    async list(f) {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (f.live) where.push('ended_at IS NULL');
      if (f.user !== undefined) { where.push('user_name = ?'); args.push(f.user); }
      if (f.host !== undefined) { where.push('host_name = ?'); args.push(f.host); }
      if (f.since !== undefined) { where.push('started_at >= ?'); args.push(f.since); }
      const sql = `SELECT * FROM sessions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC LIMIT ?`;
      return db.prepare<(string | number)[], SessionRow>(sql).all(...args, f.limit ?? 1000).map(toRecord);
    },
    async get(id) {
      const r = db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE id = ?').get(id);
      return r ? toRecord(r) : null;
    },
    async channels(id) {
      return db
        .prepare<[string], {
          session_id: string; channel: number; kind: string; command: string | null; pty: number;
          started_at: number; ended_at: number | null; exit_status: number | null; exit_signal: string | null;
        }>('SELECT * FROM channels WHERE session_id = ? ORDER BY channel')
        .all(id)
        .map((r): ChannelRecord => ({
          sessionId: r.session_id, channel: r.channel, kind: r.kind, command: r.command, pty: r.pty === 1,
          startedAt: r.started_at, endedAt: r.ended_at, exitStatus: r.exit_status, exitSignal: r.exit_signal,
        }));
    },
  };
}
