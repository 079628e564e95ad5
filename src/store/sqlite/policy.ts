import { draft } from '../../audit/events.js';
import { invalid, notFound } from '../../shared/errors.js';
import type { KillRequest, Store } from '../types.js';
import type { Ctx } from './db.js';

export function policyTable({ db }: Ctx): Store['policy'] {
  const stmt = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'policy_version'");
  return {
    async version() {
      return Number(stmt.get()?.value ?? 0);
    },
  };
}

export function killsTable(ctx: Ctx): Store['kills'] {
  const { db } = ctx;
  return {
    async request(sessionId, reason, meta) {
      ctx.change((now) => {
        const s = db.prepare<[string], { user_name: string; ended_at: number | null }>('SELECT user_name, ended_at FROM sessions WHERE id = ?').get(sessionId);
        if (!s) throw notFound(`no session "${sessionId}"`, 'list live sessions with: gatehouse sessions list --live');
        if (s.ended_at !== null) throw invalid(`session ${sessionId} has already ended`);
        db.prepare('INSERT INTO session_kills (session_id, reason, actor, created_at) VALUES (?, ?, ?, ?)').run(sessionId, reason, meta.actor, now);
        return { result: undefined, events: [draft('admin.session.kill', meta.actor, { session: sessionId, user: s.user_name, reason })] };
      });
    },
    async pending() {
      return db.prepare<[], { id: number; session_id: string; reason: string; actor: string }>('SELECT id, session_id, reason, actor FROM session_kills WHERE done_at IS NULL ORDER BY id')
        .all().map((r): KillRequest => ({ id: r.id, sessionId: r.session_id, reason: r.reason, actor: r.actor }));
    },
    async done(id) {
      db.prepare('UPDATE session_kills SET done_at = ? WHERE id = ?').run(ctx.clock.now(), id);
    },
  };
}
