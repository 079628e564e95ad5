import { describe, expect, it, vi } from 'vitest';
import { startPolicyWatcher } from '../../../src/proxy/revocation.js';
import { configSchema } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/shared/logger.js';
import type { Store } from '../../../src/store/types.js';
import type { Gate } from '../../../src/auth/admit.js';
import type { MfaGrace } from '../../../src/auth/throttle.js';

describe('revocation with a store that pushes changes (store.changes)', () => {
  it('re-checks at once on a notification, without waiting for the poll; unsubscribes at stop', async () => {
    vi.useFakeTimers();
    try {
      let push: (() => void) | null = null;
      const unsubscribe = vi.fn();
      const version = vi.fn(async () => 1);
      const pending = vi.fn(async () => []);
      const store = {
        policy: { version }, kills: { pending, done: async () => undefined },
        changes: { subscribe: (fn: () => void) => { push = fn; return unsubscribe; } },
      } as unknown as Store;
      const w = startPolicyWatcher({
        store, clock: { now: () => Date.now() }, log: createLogger({ level: 'silent' }), config: configSchema.parse({}),
        grace: {} as MfaGrace, gate: {} as Gate, entries: () => [],
      });
      expect(push).not.toBeNull();
      expect(version).not.toHaveBeenCalled();
      push!();
      await vi.advanceTimersByTimeAsync(1); // far below the 200 ms poll
      expect(version).toHaveBeenCalledTimes(1);
      // A version change found by the push carries out pending kills as well.
      expect(pending).toHaveBeenCalledTimes(1);
      w.stop();
      expect(unsubscribe).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('revocation when the store fails in the middle of a pass', () => {
  // One failed query (a failover) used to mark the new policy version as handled: the sessions after
  // the failure, and the one that failed, were never checked again until some other change.
  it('a check that fails is redone at the next pass, every session is checked, and the revoked one ends', async () => {
    vi.useFakeTimers();
    try {
      let failNext = 1;
      const audit = vi.fn(async () => {
        if (failNext > 0) { failNext--; throw new Error('connection terminated unexpectedly'); }
        return {};
      });
      const store = {
        policy: { version: async () => 2 }, kills: { pending: async () => [], done: async () => undefined },
        audit: { append: audit, list: async () => [] },
      } as unknown as Store;
      const revoked = new Set(['bob', 'carol']);
      const gate = {
        recheck: async (id: { user: string }) => ({
          identity: revoked.has(id.user) ? { ok: false, reason: 'user_disabled' } : { ok: true },
          channels: [],
        }),
      } as unknown as Gate;
      const ended: string[] = [];
      const entry = (user: string) => ({
        id: `s-${user}`, identity: { user, fingerprint: 'SHA256:x' }, startedAt: Date.now(), lastActivity: Date.now(),
        channels: () => [], end: () => { ended.push(user); live.delete(user); }, endChannel: () => undefined, warnIdle: () => undefined,
      });
      const live = new Map([['bob', entry('bob')], ['alice', entry('alice')], ['carol', entry('carol')]]);
      const w = startPolicyWatcher({
        store, clock: { now: () => Date.now() }, log: createLogger({ level: 'silent' }), config: configSchema.parse({}),
        grace: { forget: () => undefined } as unknown as MfaGrace, gate, entries: () => live.values() as never,
      });
      await vi.advanceTimersByTimeAsync(250);
      // bob's audit row failed: bob is ended all the same, and carol after him is still checked.
      expect(ended.sort()).toEqual(['bob', 'carol']);
      expect(live.has('alice')).toBe(true);
      // The failed pass is done again (the version did not count as seen): audit retried for nobody left.
      const calls = audit.mock.calls.length;
      await vi.advanceTimersByTimeAsync(250);
      expect(audit.mock.calls.length).toBe(calls);
      w.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a pass whose kill lookup fails is done again: the kill is carried out once the store answers', async () => {
    vi.useFakeTimers();
    try {
      let fail = true;
      const done = vi.fn(async () => undefined);
      const store = {
        policy: { version: async () => 5 },
        kills: {
          pending: async () => { if (fail) { fail = false; throw new Error('timeout'); } return [{ id: 9, sessionId: 's-1', actor: 'admin', reason: '' }]; },
          done,
        },
        audit: { append: async () => ({}), list: async () => [] },
      } as unknown as Store;
      const ended: string[] = [];
      const live = [{ id: 's-1', identity: { user: 'u', fingerprint: 'f' }, startedAt: Date.now(), lastActivity: Date.now(), channels: () => [], end: (r: string) => ended.push(r), endChannel: () => undefined, warnIdle: () => undefined }];
      const w = startPolicyWatcher({
        store, clock: { now: () => Date.now() }, log: createLogger({ level: 'silent' }), config: configSchema.parse({}),
        grace: { forget: () => undefined } as unknown as MfaGrace, gate: { recheck: async () => ({ identity: { ok: true }, channels: [] }) } as unknown as Gate,
        entries: () => live as never,
      });
      await vi.advanceTimersByTimeAsync(650);
      expect(ended).toEqual(['killed_by_admin']);
      expect(done).toHaveBeenCalledWith(9);
      w.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});
