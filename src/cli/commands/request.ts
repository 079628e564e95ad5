import { checkReason, personOf, targetText, type AccessRequestRecord, type RequestState, REQUEST_STATES } from '../../auth/requests.js';
import { isoTime } from '../../shared/clock.js';
import { GatehouseError, invalid, notFound, usageError } from '../../shared/errors.js';
import { checkName } from '../../shared/names.js';
import { formatDuration, parseDuration } from '../../shared/units.js';
import { str, table, type Command, type CommandContext, type Values } from '../command.js';

/**
 * Admins on the bastion decide access requests (auth/requests.ts). The actor is `cli:OSUSER`, or,
 * with --as, a gatehouse user holding the approver role (the requester can never approve their own,
 * whichever name they use).
 */
function requestJson(r: AccessRequestRecord) {
  return {
    id: r.id, user: r.user, login: r.login, target: targetText(r.target), reason: r.reason, duration: formatDuration(r.durationMs),
    durationMs: r.durationMs, state: r.state, createdAt: isoTime(r.createdAt), expiresAt: isoTime(r.expiresAt),
    approvals: r.approvals.map((a) => ({ by: a.by, at: isoTime(a.at), reason: a.reason, duration: formatDuration(a.durationMs) })),
    decidedAt: r.decidedAt === null ? null : isoTime(r.decidedAt), decidedBy: r.decidedBy, decisionReason: r.decisionReason,
    grant: r.grantId, until: r.grantUntil === null ? null : isoTime(r.grantUntil),
  };
}

function parseId(text: string): number {
  const id = Number(text.replace(/^#/, ''));
  if (!/^#?\d{1,12}$/.test(text) || !Number.isSafeInteger(id) || id <= 0) throw usageError(`"${text.slice(0, 40)}" is not a request id`, 'ids are shown by: gatehouse request list');
  return id;
}

function reasonOf(values: Values): string {
  const r = checkReason(str(values, 'reason') ?? '', false);
  if (!r.ok) throw invalid(r.message);
  return r.reason;
}

/** Who decides: `cli:OSUSER`, or --as USER (an enabled user with the approver role). */
async function actorOf(ctx: CommandContext, values: Values): Promise<string> {
  const as = str(values, 'as');
  if (as === undefined) return ctx.actor;
  const { store } = await ctx.open();
  const u = await store.users.get(checkName('user', as));
  if (!u) throw notFound(`no user named "${as}"`, 'list users with: gatehouse user list');
  if (u.disabled || !u.roles.includes('approver')) throw new GatehouseError('GH_DENIED', `user ${u.name} may not decide requests (needs the approver role, enabled)`);
  return u.name;
}

async function decided(ctx: CommandContext, id: number): Promise<AccessRequestRecord> {
  const { store } = await ctx.open();
  const r = await store.requests.get(id);
  if (!r) throw notFound(`no request #${id}`, 'list requests with: gatehouse request list');
  return r;
}

const decide = (verb: 'deny' | 'revoke' | 'cancel'): Command => ({
  names: ['request', verb], args: 'ID [--reason TEXT] [--as USER]',
  summary: verb === 'deny' ? 'deny a pending access request' : verb === 'revoke' ? 'revoke an approved request (removes its grant, ends its live sessions)' : 'cancel a pending request (as its requester: --as USER)',
  options: { reason: { type: 'string' }, as: { type: 'string' } }, positionals: { min: 1, max: 1 },
  async handler(ctx, values, [idText]) {
    const id = parseId(idText!);
    const reason = reasonOf(values);
    // Cancelling is the requester's act: --as names them, with no approver role needed.
    const as = str(values, 'as');
    const by = verb === 'cancel' && as !== undefined ? checkName('user', as) : await actorOf(ctx, values);
    const { store, config } = await ctx.open();
    await decided(ctx, id);
    const r = await store.requests.decide(id, { kind: verb, by, reason }, { approvals: config.requests.approvals });
    return { text: `request #${id} ${r.state}${verb === 'revoke' && r.grantId !== null ? ` (grant #${r.grantId} removed)` : ''}`, json: requestJson(r) };
  },
});

export const commands: Command[] = [
  {
    names: ['request', 'list'], args: '[--state pending|approved|denied|expired|cancelled|revoked] [--user U]',
    summary: 'list access requests, newest first', json: true,
    options: { state: { type: 'string' }, user: { type: 'string' } }, positionals: { min: 0, max: 0 },
    async handler(ctx, values) {
      const state = str(values, 'state');
      if (state !== undefined && !(REQUEST_STATES as readonly string[]).includes(state)) throw usageError(`unknown state "${state.slice(0, 40)}"`, `states: ${REQUEST_STATES.join(', ')}`);
      const { store } = await ctx.open();
      await store.requests.expireDue();
      const list = await store.requests.list({ state: state as RequestState | undefined, user: str(values, 'user') });
      return {
        json: list.map(requestJson),
        text: list.length === 0 ? 'no requests' : table(['ID', 'STATE', 'USER', 'TARGET', 'FOR', 'CREATED', 'REASON'], list.map((r) => [
          `#${r.id}`, r.state, r.user, `${r.login}@${targetText(r.target)}`, formatDuration(r.durationMs), isoTime(r.createdAt), r.reason,
        ])),
      };
    },
  },
  {
    names: ['request', 'show'], args: 'ID', summary: 'show one access request and its decisions', json: true, positionals: { min: 1, max: 1 },
    async handler(ctx, _values, [idText]) {
      const { store } = await ctx.open();
      await store.requests.expireDue();
      const r = await decided(ctx, parseId(idText!));
      const lines = [
        `request #${r.id}: ${r.user} asks for ${r.login}@${targetText(r.target)} for ${formatDuration(r.durationMs)}`,
        `state:    ${r.state}`, `reason:   ${r.reason}`, `created:  ${isoTime(r.createdAt)}`,
        ...(r.state === 'pending' ? [`expires:  ${isoTime(r.expiresAt)}`] : []),
        ...r.approvals.map((a) => `approved: by ${a.by} at ${isoTime(a.at)} for ${formatDuration(a.durationMs)}${a.reason ? `: ${a.reason}` : ''}`),
        ...(r.decidedBy !== null && r.state !== 'approved' ? [`${r.state}:  by ${r.decidedBy}${r.decidedAt !== null ? ` at ${isoTime(r.decidedAt)}` : ''}${r.decisionReason ? `: ${r.decisionReason}` : ''}`] : []),
        ...(r.grantId !== null ? [`grant:    #${r.grantId}${r.grantUntil !== null ? ` until ${isoTime(r.grantUntil)}` : ''}`] : []),
      ];
      return { text: lines.join('\n'), json: requestJson(r) };
    },
  },
  {
    names: ['request', 'approve'], args: 'ID [--reason TEXT] [--for DURATION] [--as USER]',
    summary: 'approve an access request (--for may shorten it); the requester can never approve their own',
    options: { reason: { type: 'string' }, for: { type: 'string' }, as: { type: 'string' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [idText]) {
      const id = parseId(idText!);
      const reason = reasonOf(values);
      const forText = str(values, 'for');
      let durationMs: number | undefined;
      if (forText !== undefined) {
        const ms = parseDuration(forText);
        if (ms === null || ms <= 0) throw invalid(`--for: "${forText.slice(0, 40)}" is not a duration`, 'e.g. --for 30m (at most what was asked)');
        durationMs = ms;
      }
      const by = await actorOf(ctx, values);
      const { store, config } = await ctx.open();
      await decided(ctx, id);
      const r = await store.requests.decide(id, { kind: 'approve', by, reason, ...(durationMs !== undefined ? { durationMs } : {}) }, { approvals: config.requests.approvals });
      const text = r.state === 'approved'
        ? `request #${id} approved: grant #${r.grantId} gives ${r.user} ${r.login}@${targetText(r.target)} until ${isoTime(r.grantUntil!)}`
        : `request #${id}: approval by ${personOf(by)} recorded (${r.approvals.length} of ${config.requests.approvals})`;
      return { text, json: requestJson(r) };
    },
  },
  decide('deny'),
  decide('revoke'),
  decide('cancel'),
];
