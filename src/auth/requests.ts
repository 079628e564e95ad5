import type { AuditDraft, Right } from '../audit/events.js';
import { draft } from '../audit/events.js';
import { isoTime } from '../shared/clock.js';

/**
 * Just-in-time access requests: the state machine, pure (no store, no clock of its own: `now` is
 * passed in). The store applies a step inside one transaction, so two approvers racing, or an
 * approval racing an expiry, see one order.
 *
 *   pending ──approve (N distinct approvers)──▶ approved ──revoke──▶ revoked
 *      ├──deny──▶ denied
 *      ├──cancel (the requester)──▶ cancelled
 *      └──pendingTtl passes──▶ expired
 *
 * An approved request's access ends on its own at the grant's `until` (the policy decides that,
 * revocation ends live sessions then); the request stays `approved`.
 */
export type RequestState = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'revoked';
export const REQUEST_STATES: readonly RequestState[] = ['pending', 'approved', 'denied', 'expired', 'cancelled', 'revoked'];

/** The rights an approved request's grant carries: what `grant add` gives by default (no forwarding). */
export const REQUEST_RIGHTS: readonly Right[] = ['shell', 'exec', 'sftp'];

export type RequestTarget = { kind: 'host'; name: string } | { kind: 'host-group'; name: string };

export interface Approval {
  /** The approver: a gatehouse user name, or `cli:OSUSER` for an admin on the bastion. */
  by: string;
  at: number;
  reason: string;
  /** The access this approver agreed to (at most what was asked). */
  durationMs: number;
}

export interface AccessRequestRecord {
  id: number;
  user: string;
  login: string;
  target: RequestTarget;
  reason: string;
  durationMs: number;
  state: RequestState;
  createdAt: number;
  /** A pending request expires at this moment. */
  expiresAt: number;
  approvals: Approval[];
  decidedAt: number | null;
  decidedBy: string | null;
  decisionReason: string | null;
  /** The grant approval created (removed again by revoke). */
  grantId: number | null;
  grantUntil: number | null;
}

export interface RequestPolicy {
  /** Distinct approvers needed. */
  approvals: number;
}

export type Transition =
  | { kind: 'approve'; by: string; reason: string; durationMs?: number }
  | { kind: 'deny'; by: string; reason: string }
  | { kind: 'cancel'; by: string; reason: string }
  | { kind: 'revoke'; by: string; reason: string }
  | { kind: 'expire' };

export type RefusalCode = 'not_pending' | 'not_approved' | 'self_approval' | 'already_approved' | 'longer_than_asked' | 'bad_duration' | 'expired' | 'not_requester';

/** What a step asks the store to do, besides saving the new record. */
export type Effect = { kind: 'create_grant'; until: number } | { kind: 'remove_grant'; grantId: number } | null;

export type Step =
  | { ok: true; record: AccessRequestRecord; effect: Effect; event: AuditDraft }
  | { ok: false; code: RefusalCode; message: string };

/** `cli:alice` and `web:alice` are alice: the requester may not approve as any of them. */
export function personOf(actor: string): string {
  const m = /^(?:cli|web|user):(.*)$/.exec(actor);
  return m ? m[1]! : actor;
}

export function targetText(t: RequestTarget): string {
  return t.kind === 'host' ? t.name : `group:${t.name}`;
}

function refuse(code: RefusalCode, message: string): Step {
  return { ok: false, code, message };
}

/** The next state of `r` under `t` at `now`, or why not. Never mutates `r`. */
export function step(r: AccessRequestRecord, t: Transition, now: number, policy: RequestPolicy): Step {
  const base = { request: r.id, user: r.user };
  if (t.kind === 'expire') {
    if (r.state !== 'pending' || now < r.expiresAt) return refuse('not_pending', `request #${r.id} is not a pending request past its time`);
    return {
      ok: true, effect: null,
      record: { ...r, state: 'expired', decidedAt: now, decidedBy: 'system', decisionReason: 'nobody decided in time' },
      event: draft('request.expired', 'system', { ...base, reason: 'nobody decided in time' }),
    };
  }
  if (t.kind === 'revoke') {
    if (r.state !== 'approved') return refuse('not_approved', `request #${r.id} is ${r.state}; only an approved request can be revoked`);
    return {
      ok: true, effect: r.grantId !== null ? { kind: 'remove_grant', grantId: r.grantId } : null,
      record: { ...r, state: 'revoked', decidedAt: now, decidedBy: t.by, decisionReason: t.reason },
      event: draft('request.revoked', t.by, { ...base, reason: t.reason, grant: r.grantId }),
    };
  }
  // Every other transition acts on a pending request that is still in time.
  if (r.state !== 'pending') return refuse('not_pending', `request #${r.id} is already ${r.state}`);
  if (now >= r.expiresAt) return refuse('expired', `request #${r.id} has expired`);
  const done = (state: RequestState, by: string, reason: string) => ({ ...r, state, decidedAt: now, decidedBy: by, decisionReason: reason });
  switch (t.kind) {
    case 'deny':
      if (personOf(t.by) === r.user) return refuse('self_approval', 'you cannot decide your own request; cancel it instead');
      return { ok: true, effect: null, record: done('denied', t.by, t.reason), event: draft('request.denied', t.by, { ...base, reason: t.reason }) };
    case 'cancel':
      if (personOf(t.by) !== r.user) return refuse('not_requester', `only ${r.user} can cancel request #${r.id}`);
      return { ok: true, effect: null, record: done('cancelled', t.by, t.reason), event: draft('request.cancelled', t.by, { ...base, reason: t.reason }) };
    case 'approve': {
      if (personOf(t.by) === r.user) return refuse('self_approval', `${r.user} cannot approve their own request`);
      if (r.approvals.some((a) => personOf(a.by) === personOf(t.by))) return refuse('already_approved', `${personOf(t.by)} already approved request #${r.id}; it needs another approver`);
      const durationMs = t.durationMs ?? r.durationMs;
      if (!Number.isSafeInteger(durationMs) || durationMs <= 0) return refuse('bad_duration', 'the duration must be positive');
      if (durationMs > r.durationMs) return refuse('longer_than_asked', `an approval may shorten the access, not lengthen it (asked: ${Math.round(r.durationMs / 1000)}s)`);
      const approvals = [...r.approvals, { by: t.by, at: now, reason: t.reason, durationMs }];
      if (approvals.length < policy.approvals) {
        return {
          ok: true, effect: null, record: { ...r, approvals },
          event: draft('request.approval', t.by, { ...base, reason: t.reason, approvals: approvals.length, needed: policy.approvals, durationMs }),
        };
      }
      // The shortest duration any approver agreed to, counted from the last approval.
      const granted = Math.min(...approvals.map((a) => a.durationMs));
      const until = now + granted;
      return {
        ok: true, effect: { kind: 'create_grant', until },
        record: { ...done('approved', t.by, t.reason), approvals, grantUntil: until },
        // The grant id is filled in by the store once the grant row exists.
        event: draft('request.approved', t.by, { ...base, reason: t.reason, login: r.login, target: targetText(r.target), grant: 0, until: isoTime(until), durationMs: granted }),
      };
    }
    default: { const never: never = t; return never; }
  }
}

/** The longest reason a request or decision may carry (it goes into the audit log and webhooks). */
export const MAX_REASON = 500;
// C0, DEL, C1, bidi controls, line/paragraph separators: a reason is one plain line.
// eslint-disable-next-line no-control-regex
const REASON_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** A reason as typed: trimmed, one line of at most MAX_REASON characters; an error message otherwise. */
export function checkReason(text: string, required: boolean): { ok: true; reason: string } | { ok: false; message: string } {
  const reason = text.trim();
  if (required && reason === '') return { ok: false, message: 'a reason is required (--reason TEXT)' };
  if (reason.length > MAX_REASON) return { ok: false, message: `the reason is longer than ${MAX_REASON} characters` };
  if (REASON_UNSAFE.test(reason)) return { ok: false, message: 'the reason may not contain control characters' };
  return { ok: true, reason };
}
