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
