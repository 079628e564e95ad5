import { expect, it } from 'vitest';
import type { FleetScanRecord } from '../../../src/fleet/facts.js';
import { parseProbeOutput } from '../../../src/fleet/parse.js';
import { forEachBackend } from '../store/backends.js';

/** store.fleet on both backends: the latest scan per host, replaced by the next, facts round-trip. */
forEachBackend('store.fleet', (make) => {
  it('keeps the latest scan per host, facts intact', async () => {
    const { store } = await make();
    const facts = parseProbeOutput('@@gatehouse-fleet:kernel@@\n6.1.0-28-amd64\n@@gatehouse-fleet:end@@\n');
    const first: FleetScanRecord = { host: 'web1', scannedAt: 1_000, reachable: false, error: 'unreachable: x', sessionId: null, durationMs: 12, facts: null };
    await store.fleet.put(first);
    expect(await store.fleet.get('web1')).toEqual(first);
    const second: FleetScanRecord = { host: 'web1', scannedAt: 2_000, reachable: true, error: null, sessionId: 'abc-1', durationMs: 3456, facts };
    await store.fleet.put(second);
    await store.fleet.put({ ...first, host: 'db1' });
    expect(await store.fleet.get('web1')).toEqual(second);
    expect((await store.fleet.list()).map((r) => r.host)).toEqual(['db1', 'web1']);
    expect(await store.fleet.get('nosuch')).toBeNull();
    expect((await store.fleet.get('web1'))!.facts!.kernel).toBe('6.1.0-28-amd64');
  });
});
