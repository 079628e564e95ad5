import { describe, expect, it } from 'vitest';
import { step, type AccessRequestRecord, type Transition } from '../../../src/auth/requests.js';
import { ManualClock } from '../../../src/shared/clock.js';

const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);
const HOUR = 3_600_000;

function pending(over: Partial<AccessRequestRecord> = {}): AccessRequestRecord {
  return {
    id: 7, user: 'bob', login: 'root', target: { kind: 'host', name: 'web1' }, reason: 'incident 42', durationMs: HOUR,
    state: 'pending', createdAt: T0, expiresAt: T0 + HOUR, approvals: [], decidedAt: null, decidedBy: null,
    decisionReason: null, grantId: null, grantUntil: null, ...over,
  };
}

const one = { approvals: 1 };
const approve = (by: string, durationMs?: number): Transition => ({ kind: 'approve', by, reason: 'ok', ...(durationMs !== undefined ? { durationMs } : {}) });

describe('access request state machine', () => {
  it('pending → approved by another person: a grant until approval time + duration, audited with actor and reason', () => {
    const clock = new ManualClock(T0);
    clock.advance(5 * 60_000);
    const s = step(pending(), approve('carol'), clock.now(), one);
    expect(s.ok).toBe(true);
    if (!s.ok) return;
    expect(s.record.state).toBe('approved');
    expect(s.effect).toEqual({ kind: 'create_grant', until: clock.now() + HOUR });
    expect(s.event).toMatchObject({ type: 'request.approved', actor: 'carol', data: { request: 7, user: 'bob', reason: 'ok' } });
  });

  it('the requester can never approve or deny their own request, under any actor spelling', () => {
    for (const by of ['bob', 'cli:bob', 'web:bob']) {
      expect(step(pending(), approve(by), T0, one)).toMatchObject({ ok: false, code: 'self_approval' });
      expect(step(pending(), { kind: 'deny', by, reason: '' }, T0, one)).toMatchObject({ ok: false, code: 'self_approval' });
    }
  });

  it('an approval may shorten the duration, never lengthen it, and must be positive', () => {
    const s = step(pending(), approve('carol', 10 * 60_000), T0, one);
    expect(s.ok && s.effect).toEqual({ kind: 'create_grant', until: T0 + 10 * 60_000 });
    expect(step(pending(), approve('carol', 2 * HOUR), T0, one)).toMatchObject({ ok: false, code: 'longer_than_asked' });
    expect(step(pending(), approve('carol', 0), T0, one)).toMatchObject({ ok: false, code: 'bad_duration' });
    expect(step(pending(), approve('carol', -5), T0, one)).toMatchObject({ ok: false, code: 'bad_duration' });
  });

  it('requests.approvals: 2 needs two distinct approvers; the same one twice does not count; the shortest duration wins', () => {
    const two = { approvals: 2 };
    const first = step(pending(), approve('carol', 30 * 60_000), T0, two);
    expect(first).toMatchObject({ ok: true, effect: null, event: { type: 'request.approval', data: { approvals: 1, needed: 2 } } });
    if (!first.ok) return;
    expect(first.record.state).toBe('pending');
    expect(step(first.record, approve('carol'), T0 + 1000, two)).toMatchObject({ ok: false, code: 'already_approved' });
    expect(step(first.record, approve('cli:carol'), T0 + 1000, two)).toMatchObject({ ok: false, code: 'already_approved' });
    const second = step(first.record, approve('dave'), T0 + 1000, two);
    expect(second).toMatchObject({ ok: true, effect: { kind: 'create_grant', until: T0 + 1000 + 30 * 60_000 } });
    expect(second.ok && second.record.state).toBe('approved');
  });

  it('pending → denied, cancelled (by the requester only) or expired (only once its time has passed)', () => {
    expect(step(pending(), { kind: 'deny', by: 'carol', reason: 'no' }, T0, one)).toMatchObject({ ok: true, record: { state: 'denied', decidedBy: 'carol', decisionReason: 'no' }, event: { type: 'request.denied' } });
    expect(step(pending(), { kind: 'cancel', by: 'bob', reason: 'fixed' }, T0, one)).toMatchObject({ ok: true, record: { state: 'cancelled' }, event: { type: 'request.cancelled', actor: 'bob' } });
    expect(step(pending(), { kind: 'cancel', by: 'carol', reason: '' }, T0, one)).toMatchObject({ ok: false, code: 'not_requester' });
    const clock = new ManualClock(T0);
    expect(step(pending(), { kind: 'expire' }, clock.now(), one)).toMatchObject({ ok: false });
    clock.advance(HOUR);
    expect(step(pending(), { kind: 'expire' }, clock.now(), one)).toMatchObject({ ok: true, record: { state: 'expired' }, event: { type: 'request.expired', actor: 'system' } });
    // Past its time, a pending request cannot be approved any more.
    expect(step(pending(), approve('carol'), clock.now(), one)).toMatchObject({ ok: false, code: 'expired' });
  });

  it('approved → revoked removes the grant; nothing else leaves a final state', () => {
    const approved = pending({ state: 'approved', grantId: 12, grantUntil: T0 + HOUR });
    expect(step(approved, { kind: 'revoke', by: 'carol', reason: 'done' }, T0, one)).toMatchObject({
      ok: true, effect: { kind: 'remove_grant', grantId: 12 }, record: { state: 'revoked' }, event: { type: 'request.revoked', data: { grant: 12, reason: 'done' } },
    });
    expect(step(pending(), { kind: 'revoke', by: 'carol', reason: '' }, T0, one)).toMatchObject({ ok: false, code: 'not_approved' });
    for (const state of ['approved', 'denied', 'expired', 'cancelled', 'revoked'] as const) {
      const r = pending({ state });
      for (const t of [approve('carol'), { kind: 'deny', by: 'carol', reason: '' }, { kind: 'cancel', by: 'bob', reason: '' }, { kind: 'expire' }] as Transition[]) {
        expect(step(r, t, T0 + 2 * HOUR, one).ok).toBe(false);
      }
      if (state !== 'approved') expect(step(r, { kind: 'revoke', by: 'carol', reason: '' }, T0, one).ok).toBe(false);
    }
  });
});
