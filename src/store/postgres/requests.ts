import { REQUEST_RIGHTS, step, type AccessRequestRecord } from '../../auth/requests.js';
import { draft, type AuditDraft } from '../../audit/events.js';
import { GatehouseError, notFound } from '../../shared/errors.js';
import type { Store } from '../types.js';
import { toRequestRecord as toRecord, type RequestRow as Row } from '../rows.js';
import { isUniqueViolation, LOCK, param, type Arg, type Ctx, type Db } from './db.js';
import { deleteGrant, insertGrant } from './grants.js';

const denied = (message: string, hint?: string) => new GatehouseError('GH_DENIED', message, hint === undefined ? {} : { hint });

const persist = (db: Db, r: AccessRequestRecord) => db.run(
  `UPDATE access_requests SET state = $1, approvals = $2, decided_at = $3, decided_by = $4, decision_reason = $5, grant_id = $6, grant_until = $7 WHERE id = $8`,
  [r.state, JSON.stringify(r.approvals), r.decidedAt, r.decidedBy, r.decisionReason, r.grantId, r.grantUntil, r.id],
);

/** Inside the transaction that removes a grant: the approved request that made it is revoked with it. */
export async function revokeRequestOfGrant(db: Db, grantId: number, actor: string, now: number): Promise<AuditDraft[]> {
  const row = await db.one<Row>("SELECT * FROM access_requests WHERE grant_id = $1 AND state = 'approved' FOR UPDATE", [grantId]);
  if (!row) return [];
  const s = step(toRecord(row), { kind: 'revoke', by: actor, reason: `grant #${grantId} removed` }, now, { approvals: 1 });
  if (!s.ok) return [];
  await db.run('UPDATE access_requests SET state = $1, decided_at = $2, decided_by = $3, decision_reason = $4 WHERE id = $5',
    [s.record.state, s.record.decidedAt, s.record.decidedBy, s.record.decisionReason, s.record.id]);
  return [s.event];
}

export function requestsTable(ctx: Ctx): Store['requests'] {
  const { db } = ctx;
  const byId = (id: number, forUpdate = false) => db.one<Row>(`SELECT * FROM access_requests WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [id]);
  const due = (now: number, forUpdate = false) =>
    db.rows<Row>(`SELECT * FROM access_requests WHERE state = 'pending' AND expires_at <= $1 ORDER BY id${forUpdate ? ' FOR UPDATE' : ''}`, [now]);

  /** Inside a transaction (rows locked): expire what is due, with its audit event. */
  const expireIn = async (now: number, rows: Row[]) => {
    const out: { record: AccessRequestRecord; event: AuditDraft }[] = [];
    for (const row of rows) {
      const s = step(toRecord(row), { kind: 'expire' }, now, { approvals: 1 });
      if (!s.ok) continue;
      await persist(db, s.record);
      out.push({ record: s.record, event: s.event });
    }
    return out;
  };

  return {
    async create(r, limits) {
      return ctx.change<{ created: boolean; request: AccessRequestRecord }>(async (now) => {
        // One user's requests are created one at a time across nodes: the per-user limit holds.
        await db.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK.requests, r.user]);
        const expired = await expireIn(now, await due(now, true));
        const events = expired.map((e) => e.event);
        const same = await db.one<Row>(
          "SELECT * FROM access_requests WHERE state = 'pending' AND user_name = $1 AND login = $2 AND target_kind = $3 AND target_name = $4",
          [r.user, r.login, r.target.kind, r.target.name],
        );
        if (same) return { result: { created: false, request: toRecord(same) }, events };
        const open = (await db.one<{ n: number }>("SELECT count(*) AS n FROM access_requests WHERE state = 'pending' AND user_name = $1", [r.user]))!.n;
        if (open >= limits.maxOpen) {
          throw denied(`you already have ${open} pending requests (the limit is ${limits.maxOpen})`, 'wait for a decision, or cancel one');
        }
        let id: number;
        try {
          id = (await db.one<{ id: number }>(`INSERT INTO access_requests (user_name, login, target_kind, target_name, reason, duration_ms, state, created_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8) RETURNING id`, [r.user, r.login, r.target.kind, r.target.name, r.reason, r.durationMs, now, r.expiresAt]))!.id;
        } catch (err) {
          if (isUniqueViolation(err)) throw denied('the same request is already pending');
          throw err;
        }
        const request = toRecord((await byId(id))!);
        events.push(draft('request.created', r.user, {
          request: id, user: r.user, reason: r.reason, login: r.login,
          target: r.target.kind === 'host' ? r.target.name : `group:${r.target.name}`, durationMs: r.durationMs,
        }));
        return { result: { created: true, request }, events };
      });
    },
    async get(id) {
      if (!Number.isSafeInteger(id)) return null;
      const r = await byId(id);
      return r ? toRecord(r) : null;
    },
    async byGrant(grantId) {
      if (!Number.isSafeInteger(grantId)) return null;
      const r = await db.one<Row>('SELECT * FROM access_requests WHERE grant_id = $1 ORDER BY id DESC LIMIT 1', [grantId]);
      return r ? toRecord(r) : null;
    },
    async list(filter) {
      const where: string[] = [];
      const args: Arg[] = [];
      if (filter.state !== undefined) where.push(`state = ${param(args, filter.state)}`);
      if (filter.user !== undefined) where.push(`user_name = ${param(args, filter.user)}`);
      const sql = `SELECT * FROM access_requests ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ${param(args, filter.limit ?? 1000)}`;
      return (await db.rows<Row>(sql, args)).map(toRecord);
    },
    async decide(id, t, policy) {
      // A refusal is thrown after the commit, so an expiry found on the way is kept.
      const out = await ctx.change<{ error: string } | { record: AccessRequestRecord }>(async (now) => {
        // The row is locked: two approvers deciding at once on two nodes take turns.
        const row = Number.isSafeInteger(id) ? await byId(id, true) : undefined;
        if (!row) throw notFound(`no request #${id}`, 'list requests with: gatehouse request list');
        const expired = t.kind === 'expire' ? [] : await expireIn(now, row.state === 'pending' && row.expires_at <= now ? [row] : []);
        const current = expired[0]?.record ?? toRecord(row);
        const s = step(current, t, now, policy);
        if (!s.ok) return { result: { error: s.message }, events: expired.map((e) => e.event) };
        let record = s.record;
        let event = s.event;
        const events: AuditDraft[] = [];
        if (s.effect?.kind === 'create_grant') {
          const g = await insertGrant(db, {
            who: { kind: 'user', name: record.user }, where: record.target, logins: [record.login], rights: [...REQUEST_RIGHTS],
            until: s.effect.until, reason: `request #${record.id}: ${record.reason}`, source: `request:${record.id}`,
          }, event.actor, now);
          record = { ...record, grantId: g.record.id };
          if (event.type === 'request.approved') event = { ...event, data: { ...event.data, grant: g.record.id } };
          events.push(g.event);
        } else if (s.effect?.kind === 'remove_grant') {
          const ev = await deleteGrant(db, s.effect.grantId, event.actor);
          if (ev) events.push(ev);
        }
        await persist(db, record);
        return { result: { record }, events: [event, ...events] };
      });
      if ('error' in out) throw denied(out.error);
      return out.record;
    },
    async expireDue() {
      // Read first: the server asks every half second; a write transaction each time is for nothing.
      if ((await due(ctx.clock.now())).length === 0) return [];
      return ctx.change(async (now) => {
        const done = await expireIn(now, await due(now, true));
        return { result: done.map((d) => d.record), events: done.map((d) => d.event) };
      });
    },
  };
}
