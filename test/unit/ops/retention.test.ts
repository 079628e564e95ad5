import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { sweepRetention, startRetention } from '../../../src/ops/retention.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { verifyRecordings } from '../../../src/recorder/verify.js';
import type { Store } from '../../../src/store/types.js';
import { tempDir } from '../../helpers/cli.js';
import { admin, tempStore } from '../../helpers/store.js';

const DAY = 86_400_000;
const sign = (h: string) => Buffer.from(h, 'hex').toString('base64');
// The unit tests sign with a stand-in: the "signature" is the hash itself.
const verify = (data: Buffer, sig: Buffer) => data.equals(sig);

async function recordSession(store: Store, root: string, id: string): Promise<string> {
  await store.sessions.open({ id, user: 'alice', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'command', node: 'n1' });
  await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command: 'true', pty: false, host: 'h', login: 'l' });
  const rel = `2026/11/24/${id}-0.cast`;
  fs.mkdirSync(path.join(root, '2026/11/24'), { recursive: true });
  fs.writeFileSync(path.join(root, rel), '{"version":2}\n');
  await store.recordings.open({ sessionId: id, channel: 0, path: rel, kind: 'terminal' });
  const { createHash } = await import('node:crypto');
  await store.recordings.close({ sessionId: id, channel: 0, state: 'closed', truncated: false, size: 14, sha256: createHash('sha256').update('{"version":2}\n').digest('hex') }, sign);
  await store.sessions.close(id, 'client_closed', 0, 0);
  return path.join(root, rel);
}

describe('retention sweep', () => {
  it('a deletion forged by someone who can write the database (no sweep, a fresh session) is not passed off as retention', async () => {
    const { store, clock } = tempStore();
    const root = tempDir();
    const file = await recordSession(store, root, 'young-1');
    clock.advance(60_000);
    // The attacker deletes through the same store path the sweep uses, a minute after the session ended.
    await store.retention.markDeleted('young-1', 0, { actor: 'system' });
    fs.rmSync(file);
    const report = await verifyRecordings(store, root, verify, undefined, { retention: 180 * DAY });
    expect(report.items.map((i) => i.verdict)).toEqual(['missing']);
    expect(report.ok).toBe(false);
    store.close();
  });


  it('deletes expired recordings, never a held one nor a live one, and the chain still verifies', async () => {
    const { store, clock } = tempStore();
    const root = tempDir();
    const old = await recordSession(store, root, 'old-1');
    const held = await recordSession(store, root, 'held-1');
    await store.retention.hold('held-1', 'case 7', admin);
    clock.advance(10 * DAY);
    const recent = await recordSession(store, root, 'recent-1');
    await store.sessions.open({ id: 'live-1', user: 'bob', keyFingerprint: 'SHA256:y', sourceAddr: '127.0.0.1', mode: 'command', node: 'n1' });
    clock.advance(1 * DAY);

    const r = await sweepRetention({ store, root, clock, log: silentLogger(), retention: 5 * DAY });
    expect(r).toEqual({ deleted: 1, leftovers: 0 });
    expect(fs.existsSync(old)).toBe(false);
    expect(fs.existsSync(held)).toBe(true);
    expect(fs.existsSync(recent)).toBe(true);
    const report = await verifyRecordings(store, root, verify, undefined, { retention: 5 * DAY });
    expect(report.chain.problems.filter((p) => !p.includes('checkpoint'))).toEqual([]);
    expect(report.items.map((i) => [i.sessionId, i.verdict])).toEqual([['old-1', 'deleted'], ['held-1', 'intact'], ['recent-1', 'intact']]);
    // A deletion is policy only under the retention this bastion runs with: kept for ever, or a
    // retention the session had not reached when it was deleted, the same row is a missing file.
    const verdict = async (retention: number | null) => (await verifyRecordings(store, root, verify, 'old-1', { retention })).items[0]!.verdict;
    expect(await verdict(null)).toBe('missing');
    expect(await verdict(30 * DAY)).toBe('missing');
    expect(await verdict(5 * DAY)).toBe('deleted');
    const ev = await store.audit.list({ type: 'recording.deleted' });
    expect(ev.map((e) => e.data)).toMatchObject([{ session: 'old-1', channel: 0, user: 'alice', reason: 'retention' }]);

    // Nothing to do twice; "forever" does nothing at all.
    expect(await sweepRetention({ store, root, clock, log: silentLogger(), retention: 5 * DAY })).toEqual({ deleted: 0, leftovers: 0 });
    clock.advance(100 * DAY);
    expect(await sweepRetention({ store, root, clock, log: silentLogger(), retention: null })).toEqual({ deleted: 0, leftovers: 0 });
    store.close();
  });

  it('a hold placed while the sweep runs wins (checked in the deleting transaction)', async () => {
    const { store, clock } = tempStore();
    const root = tempDir();
    const file = await recordSession(store, root, 'race-1');
    clock.advance(10 * DAY);
    const expired = store.retention.expired.bind(store.retention);
    // The sweep reads the candidates, then the CLI puts the session on hold, then the sweep deletes.
    store.retention.expired = async (before, limit) => {
      const rows = await expired(before, limit);
      await store.retention.hold('race-1', 'just in time', admin);
      return rows;
    };
    expect((await sweepRetention({ store, root, clock, log: silentLogger(), retention: DAY })).deleted).toBe(0);
    expect(fs.existsSync(file)).toBe(true);
    expect(await store.audit.count('recording.deleted')).toBe(0);
    store.close();
  });

  it('a file left behind by a crash between marking and deleting is removed at the next sweep', async () => {
    const { store, clock } = tempStore();
    const root = tempDir();
    const file = await recordSession(store, root, 'crash-1');
    clock.advance(10 * DAY);
    expect(await store.retention.markDeleted('crash-1', 0, { actor: 'system' })).toBe(true);
    expect(fs.existsSync(file)).toBe(true);
    expect(await sweepRetention({ store, root, clock, log: silentLogger(), retention: DAY })).toEqual({ deleted: 0, leftovers: 1 });
    expect(fs.existsSync(file)).toBe(false);
    store.close();
  });

  it('the server sweeps soon after start and then every day (injected timers)', async () => {
    vi.useFakeTimers();
    try {
      const calls: number[] = [];
      const { store, clock } = tempStore();
      const deleted = store.retention.deleted.bind(store.retention);
      store.retention.deleted = async () => { calls.push(clock.now()); return deleted(); };
      const r = startRetention({ store, root: tempDir(), clock, log: silentLogger(), retention: DAY, firstAfterMs: 1000, everyMs: DAY });
      await vi.advanceTimersByTimeAsync(999);
      expect(calls).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(2);
      expect(calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(DAY);
      expect(calls).toHaveLength(2);
      await r.stop();
      await vi.advanceTimersByTimeAsync(3 * DAY);
      expect(calls).toHaveLength(2);
      store.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('release needs a hold; hold needs a reason', async () => {
    const { store } = tempStore();
    await store.sessions.open({ id: 's1', user: 'a', keyFingerprint: 'k', sourceAddr: 'x', mode: 'command' });
    await expect(store.retention.release('s1', admin)).rejects.toThrow(/not on hold/);
    await expect(store.retention.hold('s1', '  ', admin)).rejects.toThrow(/needs a reason/);
    await store.retention.hold('s1', 'r', admin);
    expect(await store.retention.holdOf('s1')).toMatchObject({ reason: 'r', by: 'test' });
    expect((await store.retention.held()).map((h) => [h.sessionId, h.user, h.reason])).toEqual([['s1', 'a', 'r']]);
    await store.retention.release('s1', admin);
    expect(await store.retention.holdOf('s1')).toBeNull();
    expect(await store.retention.held()).toEqual([]);
    store.close();
  });
});
