import { REQUEST_RIGHTS, step, type AccessRequestRecord } from '../../auth/requests.js';
import { draft, type AuditDraft } from '../../audit/events.js';
import { GatehouseError, notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import { toRequestRecord as toRecord, type RequestRow as Row } from '../rows.js';
import type { Ctx, DB } from './db.js';
import { isUniqueViolation } from './db.js';
import { deleteGrant, insertGrant } from './grants.js';

const denied = (message: string, hint?: string) => new GatehouseError('GH_DENIED', message, hint === undefined ? {} : { hint });

/**
 * Inside the transaction that removes a grant: the approved request that made it (if any) is
 * revoked with it, so `request list` never shows an approval whose grant an admin removed.
 */
export function revokeRequestOfGrant(db: DB, grantId: number, actor: string, now: number): AuditDraft[] {
  const row = db.prepare<[number], Row>("SELECT * FROM access_requests WHERE grant_id = ? AND state = 'approved'").get(grantId);
  if (!row) return [];
  const s = step(toRecord(row), { kind: 'revoke', by: actor, reason: `grant #${grantId} removed` }, now, { approvals: 1 });
  if (!s.ok) return [];
  db.prepare('UPDATE access_requests SET state = ?, decided_at = ?, decided_by = ?, decision_reason = ? WHERE id = ?')
    .run(s.record.state, s.record.decidedAt, s.record.decidedBy, s.record.decisionReason, s.record.id);
  return [s.event];
}

export function requestsTable(ctx: Ctx): Store['requests'] {
  const { db } = ctx;
  const byId = db.prepare<[number], Row>('SELECT * FROM access_requests WHERE id = ?');
  const save = db.prepare(`UPDATE access_requests SET state = @state, approvals = @approvals, decided_at = @decidedAt, decided_by = @decidedBy,
    decision_reason = @decisionReason, grant_id = @grantId, grant_until = @grantUntil WHERE id = @id`);
  const persist = (r: AccessRequestRecord) => save.run({
    id: r.id, state: r.state, approvals: JSON.stringify(r.approvals), decidedAt: r.decidedAt, decidedBy: r.decidedBy,
    decisionReason: r.decisionReason, grantId: r.grantId, grantUntil: r.grantUntil,
  });

  /** Inside a transaction: expire what is due, with its audit event. */
  const expireIn = (now: number, rows: Row[]) => rows.flatMap((row) => {
    const s = step(toRecord(row), { kind: 'expire' }, now, { approvals: 1 });
    if (!s.ok) return [];
    persist(s.record);
    return [{ record: s.record, event: s.event }];
  });
  const due = db.prepare<[number], Row>("SELECT * FROM access_requests WHERE state = 'pending' AND expires_at <= ? ORDER BY id");

  return {
    async create(r, limits) {
      return ctx.change<{ created: boolean; request: AccessRequestRecord }>((now) => {
        const expired = expireIn(now, due.all(now));
        const events = expired.map((e) => e.event);
        const same = db.prepare<[string, string, string, string], Row>(
          "SELECT * FROM access_requests WHERE state = 'pending' AND user_name = ? AND login = ? AND target_kind = ? AND target_name = ?",
        ).get(r.user, r.login, r.target.kind, r.target.name);
        if (same) return { result: { created: false, request: toRecord(same) }, events };
        const open = db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM access_requests WHERE state = 'pending' AND user_name = ?").get(r.user)!.n;
        if (open >= limits.maxOpen) {
          throw denied(`you already have ${open} pending requests (the limit is ${limits.maxOpen})`, 'wait for a decision, or cancel one');
        }
        let id: number;
        try {
          id = Number(db.prepare(`INSERT INTO access_requests (user_name, login, target_kind, target_name, reason, duration_ms, state, created_at, expires_at)
            VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)`).run(r.user, r.login, r.target.kind, r.target.name, r.reason, r.durationMs, now, r.expiresAt).lastInsertRowid);
        } catch (err) {
          if (isUniqueViolation(err)) throw denied('the same request is already pending');
          throw err;
        }
        const request = toRecord(byId.get(id)!);
        events.push(draft('request.created', r.user, {
          request: id, user: r.user, reason: r.reason, login: r.login,
          target: r.target.kind === 'host' ? r.target.name : `group:${r.target.name}`, durationMs: r.durationMs,
        }));
        return { result: { created: true, request }, events };
      });
    },
    async get(id) {
      const r = byId.get(id);
      return r ? toRecord(r) : null;
    },
    async byGrant(grantId) {
      const r = db.prepare<[number], Row>('SELECT * FROM access_requests WHERE grant_id = ? ORDER BY id DESC LIMIT 1').get(grantId);
      return r ? toRecord(r) : null;
    },
    async list(filter) {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (filter.state !== undefined) { where.push('state = ?'); args.push(filter.state); }
      if (filter.user !== undefined) { where.push('user_name = ?'); args.push(filter.user); }
      const sql = `SELECT * FROM access_requests ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
      return db.prepare<(string | number)[], Row>(sql).all(...args, filter.limit ?? 1000).map(toRecord);
    },
    async decide(id, t, policy) {
      // A refusal is thrown after the commit, so an expiry found on the way is kept.
      const out = ctx.change<{ error: string } | { record: AccessRequestRecord }>((now) => {
        const row = byId.get(id);
        if (!row) throw notFound(`no request #${id}`, 'list requests with: gatehouse request list');
        const expired = t.kind === 'expire' ? [] : expireIn(now, row.state === 'pending' && row.expires_at <= now ? [row] : []);
        const current = expired[0]?.record ?? toRecord(row);
        const s = step(current, t, now, policy);
        if (!s.ok) return { result: { error: s.message }, events: expired.map((e) => e.event) };
        let record = s.record;
        let event = s.event;
        const events: AuditDraft[] = [];
        if (s.effect?.kind === 'create_grant') {
          const g = insertGrant(db, {
            who: { kind: 'user', name: record.user }, where: record.target, logins: [record.login], rights: [...REQUEST_RIGHTS],
            until: s.effect.until, reason: `request #${record.id}: ${record.reason}`, source: `request:${record.id}`,
          }, event.actor, now);
          record = { ...record, grantId: g.record.id };
          if (event.type === 'request.approved') event = { ...event, data: { ...event.data, grant: g.record.id } };
          events.push(g.event);
        } else if (s.effect?.kind === 'remove_grant') {
          // An admin may have removed the grant already: then there is nothing left to end.
          const ev = deleteGrant(db, s.effect.grantId, event.actor);
          if (ev) events.push(ev);
        }
        persist(record);
        return { result: { record }, events: [event, ...events] };
      });
      if ('error' in out) throw denied(out.error);
      return out.record;
    },
    async expireDue() {
      // Read first: the server asks every half second, and a write transaction each time would
      // compete with the CLI for the lock for nothing.
      if (due.all(ctx.clock.now()).length === 0) return [];
      return ctx.change((now) => {
        const done = expireIn(now, due.all(now));
        return { result: done.map((d) => d.record), events: done.map((d) => d.event) };
      });
    },
  };
}
