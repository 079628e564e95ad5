import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { checkReason, targetText, type AccessRequestRecord } from '../auth/requests.js';
import { checkSecondFactor } from '../auth/secondfactor.js';
import { isoTime } from '../shared/clock.js';
import { GatehouseError } from '../shared/errors.js';
import { formatDuration, parseDuration } from '../shared/units.js';
import type { UserRecord } from '../store/types.js';
import { Html, html, page } from './html.js';
import { digits, only, text } from './input.js';
import { canView, credentialGeneration, csrfUserInfo } from './login.js';
import type { WebDeps } from './server.js';

/**
 * The Requests page (auth/requests.ts): approvers see pending requests and decide them. Approving
 * asks for a fresh TOTP code at that moment (the same check as the login: a step is accepted once,
 * a wrong code counts toward the lockout), so a stolen browser session alone approves nothing. The
 * requester can never approve their own (the state machine refuses it, whatever the page shows).
 * Viewing: approvers, auditors and admins; deciding: the approver role only.
 */
export function mayUseRequests(u: UserRecord): boolean {
  return !u.disabled && (canView(u) || u.roles.includes('approver'));
}

const ID = { ...digits(12), minLength: 1 };
const S = {
  list: { querystring: only() },
  one: { params: only({ id: ID }, ['id']), querystring: only() },
  approve: { params: only({ id: ID }, ['id']), querystring: only(), body: only({ _csrf: text(256), code: text(32), reason: text(2000), for: text(32) }) },
  decide: { params: only({ id: ID }, ['id']), querystring: only(), body: only({ _csrf: text(256), reason: text(2000) }) },
};

type Who = { user: UserRecord; csrf: string };

export function registerRequests(app: FastifyInstance, deps: WebDeps): void {
  const { store, clock, config, dataDir } = deps;
  const who = new WeakMap<FastifyRequest, Who>();

  // Like the server's authenticate, with approvers admitted: still enabled, same credentials.
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    const name = req.session.get('user');
    const u = name ? await store.users.get(name) : null;
    if (!u || !mayUseRequests(u) || req.session.get('gen') !== (await credentialGeneration(store, u.name))) {
      if (name) await req.session.destroy();
      return reply.code(req.method === 'GET' ? 302 : 401).header('location', '/login').send();
    }
    who.set(req, { user: u, csrf: reply.generateCsrf({ userInfo: csrfUserInfo(req) }) });
  };
  const approverOnly = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!who.get(req)?.user.roles.includes('approver')) return reply.code(403).type('text/plain').send('approvers only');
  };
  const view = (schema: Record<string, unknown>) => ({ preHandler: authenticate, schema });
  const change = (schema: Record<string, unknown>) => ({ preValidation: app.csrfProtection, preHandler: [authenticate, approverOnly], schema });
  const send = (reply: FastifyReply, title: string, w: Who, body: Html) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page(title, { name: w.user.name, roles: w.user.roles, csrf: w.csrf }, body));
  const idOf = (req: FastifyRequest) => Number((req.params as { id: string }).id);
  const refused = (reply: FastifyReply, status: number, message: string) => reply.code(status).type('text/plain; charset=utf-8').send(message.slice(0, 200));
  const policy = () => ({ approvals: config.requests.approvals });

  app.get('/requests', view(S.list), async (req, reply) => {
    const w = who.get(req)!;
    await store.requests.expireDue();
    const pending = (await store.requests.list({ state: 'pending', limit: 200 })).reverse();
    const recent = (await store.requests.list({ limit: 50 })).filter((r) => r.state !== 'pending');
    const rows = (list: AccessRequestRecord[]) => list.map((r) => html`<tr><td><a href="/requests/${r.id}">#${r.id}</a></td><td>${r.state}</td><td>${r.user}</td>
      <td>${r.login}@${targetText(r.target)}</td><td>${formatDuration(r.durationMs)}</td><td>${isoTime(r.createdAt)}</td><td>${r.reason}</td></tr>`);
    const head = html`<tr><th>ID</th><th>State</th><th>User</th><th>Target</th><th>For</th><th>Created</th><th>Reason</th></tr>`;
    return send(reply, 'Requests', w, html`<h2>Pending</h2>${pending.length ? html`<table id="pending">${head}${rows(pending)}</table>` : html`<p id="pending">No pending requests.</p>`}
      <h2>Decided</h2>${recent.length ? html`<table id="decided">${head}${rows(recent)}</table>` : html`<p>None yet.</p>`}`);
  });

  app.get('/requests/:id', view(S.one), async (req, reply) => {
    const w = who.get(req)!;
    await store.requests.expireDue();
    const r = await store.requests.get(idOf(req));
    if (!r) return refused(reply, 404, 'not found');
    const approver = w.user.roles.includes('approver');
    const own = r.user === w.user.name;
    const token = html`<input type="hidden" name="_csrf" value="${w.csrf}">`;
    const forms = !approver ? html`` : r.state === 'pending'
      ? (own ? html`<p class="note">This is your own request: another approver must decide it.</p>` : html`
        <form method="post" action="/requests/${r.id}/approve" id="approve">${token}
          <label>Your TOTP code <input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required></label>
          <label>For (at most ${formatDuration(r.durationMs)}) <input name="for" placeholder="${formatDuration(r.durationMs)}"></label>
          <label>Reason <input name="reason" maxlength="500"></label>
          <button type="submit">Approve</button></form>
        <form method="post" action="/requests/${r.id}/deny" id="deny">${token}
          <label>Reason <input name="reason" maxlength="500"></label><button type="submit">Deny</button></form>`)
      : r.state === 'approved' ? html`<form method="post" action="/requests/${r.id}/revoke" id="revoke">${token}
          <label>Reason <input name="reason" maxlength="500"></label><button type="submit">Revoke (ends live sessions)</button></form>` : html``;
    const approvals = r.approvals.map((a) => html`<li>approved by ${a.by} at ${isoTime(a.at)} for ${formatDuration(a.durationMs)}${a.reason ? `: ${a.reason}` : ''}</li>`);
    return send(reply, `Request #${r.id}`, w, html`<dl id="request">
      <dt>User</dt><dd>${r.user}</dd><dt>Target</dt><dd>${r.login}@${targetText(r.target)}</dd><dt>For</dt><dd>${formatDuration(r.durationMs)}</dd>
      <dt>Reason</dt><dd>${r.reason}</dd><dt>State</dt><dd id="state">${r.state}</dd><dt>Created</dt><dd>${isoTime(r.createdAt)}</dd>
      ${r.state === 'pending' ? html`<dt>Expires</dt><dd>${isoTime(r.expiresAt)}</dd>` : html``}
      ${r.grantId !== null ? html`<dt>Grant</dt><dd>#${r.grantId}${r.grantUntil !== null ? ` until ${isoTime(r.grantUntil)}` : ''}</dd>` : html``}
      ${r.decidedBy !== null && r.state !== 'approved' ? html`<dt>Decided</dt><dd>${r.state} by ${r.decidedBy}${r.decisionReason ? `: ${r.decisionReason}` : ''}</dd>` : html``}
      </dl><ul>${approvals}</ul>${forms}`);
  });

  app.post('/requests/:id/approve', change(S.approve), async (req, reply) => {
    const w = who.get(req)!;
    const body = req.body as { code?: string; reason?: string; for?: string };
    const id = idOf(req);
    if (!(await store.requests.get(id))) return refused(reply, 404, 'not found');
    const reason = checkReason(body.reason ?? '', false);
    if (!reason.ok) return refused(reply, 400, reason.message);
    let durationMs: number | undefined;
    if (body.for?.trim()) {
      const ms = parseDuration(body.for);
      if (ms === null || ms <= 0) return refused(reply, 400, 'for: not a duration (e.g. 30m)');
      durationMs = ms;
    }
    // The fresh second factor, at this moment, under the same lockout as a login.
    if ((await store.lockout.lockedUntil(w.user.id, clock.now())) !== null) return refused(reply, 403, 'your account is locked');
    const totp = await store.totp.get(w.user.name);
    if (!totp) return refused(reply, 403, 'approving needs an enrolled TOTP');
    const second = await checkSecondFactor({ store, clock, config, masterKey: dataDir.masterKey }, { user: w.user.name, userId: w.user.id }, totp, body.code ?? '', req.ip);
    if (!second.ok) return refused(reply, 403, `code refused (${second.reason})`);
    return decide(reply, id, { kind: 'approve', by: `web:${w.user.name}`, reason: reason.reason, ...(durationMs !== undefined ? { durationMs } : {}) });
  });

  for (const verb of ['deny', 'revoke'] as const) {
    app.post(`/requests/:id/${verb}`, change(S.decide), async (req, reply) => {
      const w = who.get(req)!;
      const id = idOf(req);
      if (!(await store.requests.get(id))) return refused(reply, 404, 'not found');
      const reason = checkReason((req.body as { reason?: string }).reason ?? '', false);
      if (!reason.ok) return refused(reply, 400, reason.message);
      return decide(reply, id, { kind: verb, by: `web:${w.user.name}`, reason: reason.reason });
    });
  }

  async function decide(reply: FastifyReply, id: number, t: Parameters<typeof store.requests.decide>[1]) {
    try {
      await store.requests.decide(id, t, policy());
    } catch (err) {
      if (err instanceof GatehouseError) return refused(reply, 409, err.message);
      throw err;
    }
    return reply.code(303).header('location', `/requests/${id}`).send();
  }
}
