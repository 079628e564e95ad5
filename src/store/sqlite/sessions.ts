import os from 'node:os';
import { TERMINATED_PREFIXES, type ChannelRecord, type SessionFilter, type SessionRecord, type SessionStatus, type Store } from '../types.js';
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
  node: string | null;
}

const toRecord = (r: SessionRow): SessionRecord => ({
  id: r.id, user: r.user_name, keyFingerprint: r.key_fingerprint, sourceAddr: r.source_addr, host: r.host_name,
  login: r.login, mode: r.mode, grantId: r.grant_id, startedAt: r.started_at, endedAt: r.ended_at,
  endReason: r.end_reason, bytesUp: r.bytes_up, bytesDown: r.bytes_down, node: r.node,
});

function sessionWhere(f: SessionFilter): { where: string; args: (string | number)[] } {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (f.live) where.push('ended_at IS NULL');
  if (f.user !== undefined) { where.push('user_name = ?'); args.push(f.user); }
  if (f.host !== undefined) { where.push('host_name = ?'); args.push(f.host); }
  if (f.since !== undefined) { where.push('started_at >= ?'); args.push(f.since); }
  if (f.ids !== undefined) {
    where.push(f.ids.length ? `id IN (${f.ids.map(() => '?').join(',')})` : '0');
    args.push(...f.ids);
  }
  if (f.status !== undefined) {
    // coalesce: a NULL reason is a plain end, and NOT (NULL) would drop the row.
    const terminated = `(${TERMINATED_PREFIXES.map(() => "instr(coalesce(end_reason, ''), ?) = 1").join(' OR ')})`;
    const sql: Record<SessionStatus, string> = {
      live: 'ended_at IS NULL',
      interrupted: "ended_at IS NOT NULL AND end_reason = 'interrupted'",
      terminated: `ended_at IS NOT NULL AND ${terminated}`,
      ended: `ended_at IS NOT NULL AND coalesce(end_reason, '') <> 'interrupted' AND NOT ${terminated}`,
    };
    where.push(sql[f.status]);
    if (f.status === 'terminated' || f.status === 'ended') args.push(...TERMINATED_PREFIXES);
  }
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', args };
}

export function sessionsTable(ctx: Ctx): Store['sessions'] {
  const { db, clock } = ctx;
  return {
    async open(s) {
      db.prepare('INSERT INTO sessions (id, user_name, key_fingerprint, source_addr, mode, started_at, node) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(s.id, s.user, s.keyFingerprint, s.sourceAddr, s.mode, clock.now(), s.node ?? os.hostname());
    },
    async setTarget(id, host, login, grantId) {
      // The first target a connection reaches names the session; later channels are in the channels table.
      db.prepare('UPDATE sessions SET host_name = ?, login = ?, grant_id = ? WHERE id = ? AND host_name IS NULL').run(host, login, grantId, id);
    },
    async close(id, reason, bytesUp, bytesDown) {
      db.prepare('UPDATE sessions SET ended_at = ?, end_reason = ?, bytes_up = ?, bytes_down = ? WHERE id = ? AND ended_at IS NULL')
        .run(clock.now(), reason, bytesUp, bytesDown, id);
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
        db.prepare(`UPDATE sessions SET ended_at = ?, end_reason = 'interrupted' WHERE ${mine}`).run(now, node);
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
      const sql = `SELECT * FROM sessions ${where} ORDER BY started_at DESC LIMIT ? OFFSET ?`;
      return db.prepare<(string | number)[], SessionRow>(sql).all(...args, f.limit ?? 1000, f.offset ?? 0).map(toRecord);
    },
    async count(f) {
      const { where, args } = sessionWhere(f);
      return db.prepare<(string | number)[], { n: number }>(`SELECT count(*) AS n FROM sessions ${where}`).get(...args)!.n;
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
