import { draft } from '../../audit/events.js';
import { invalid, notFound } from '../../shared/errors.js';
import type { KillRequest, Store } from '../types.js';
import type { Ctx } from './db.js';

export function policyTable({ db }: Ctx): Store['policy'] {
  return {
    async version() {
      return Number((await db.one<{ value: string }>("SELECT value FROM meta WHERE key = 'policy_version'"))?.value ?? 0);
    },
  };
}

export function killsTable(ctx: Ctx): Store['kills'] {
  const { db } = ctx;
  return {
    async request(sessionId, reason, meta) {
      // The insert's trigger bumps the policy version and notifies every node (migrations.ts).
      await ctx.change(async (now) => {
        const s = await db.one<{ user_name: string; ended_at: number | null }>('SELECT user_name, ended_at FROM sessions WHERE id = $1', [sessionId]);
        if (!s) throw notFound(`no session "${sessionId}"`, 'list live sessions with: gatehouse sessions list --live');
        if (s.ended_at !== null) throw invalid(`session ${sessionId} has already ended`);
        await db.run('INSERT INTO session_kills (session_id, reason, actor, created_at) VALUES ($1, $2, $3, $4)', [sessionId, reason, meta.actor, now]);
        return { result: undefined, events: [draft('admin.session.kill', meta.actor, { session: sessionId, user: s.user_name, reason })] };
      });
    },
    async pending() {
      return (await db.rows<{ id: number; session_id: string; reason: string; actor: string }>(
        'SELECT id, session_id, reason, actor FROM session_kills WHERE done_at IS NULL ORDER BY id'))
        .map((r): KillRequest => ({ id: r.id, sessionId: r.session_id, reason: r.reason, actor: r.actor }));
    },
    async done(id) {
      await db.run('UPDATE session_kills SET done_at = $1 WHERE id = $2', [ctx.clock.now(), id]);
    },
  };
}
