import { describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { diskLevel, startDiskWatch } from '../../../src/ops/disk.js';
import { drainSessions, goingDownMessage } from '../../../src/ops/shutdown.js';
import type { LiveSession } from '../../../src/proxy/connection.js';
import { silentLogger } from '../../../src/shared/logger.js';

function fakeSession(id: string, notes: string[]): LiveSession {
  return { id, channels: () => [{ notify: (m: string) => notes.push(`${id}: ${m}`) }] } as unknown as LiveSession;
}

describe('drainSessions', () => {
  it('tells every live channel, then resolves as soon as the last session ends', async () => {
    vi.useFakeTimers();
    try {
      const notes: string[] = [];
      const live = new Map([['a', fakeSession('a', notes)], ['b', fakeSession('b', notes)]]);
      let t = 0;
      const d = drainSessions({ live, graceMs: 30_000, log: silentLogger(), now: () => t });
      expect(notes).toEqual([`a: ${goingDownMessage(30_000)}`, `b: ${goingDownMessage(30_000)}`]);
      expect(goingDownMessage(30_000)).toMatch(/going down in 30s/);
      let done: { remaining: number } | null = null;
      void d.done.then((r) => { done = r; });
      live.delete('a');
      await vi.advanceTimersByTimeAsync(5_000);
      expect(done).toBeNull();
      live.delete('b');
      t = 6_000;
      await vi.advanceTimersByTimeAsync(200);
      expect(done).toEqual({ remaining: 0, waitedMs: 6_000 });
    } finally {
      vi.useRealTimers();
    }
  });

  it('gives up at the grace, or at once when cut (second signal) or when nothing is live', async () => {
    vi.useFakeTimers();
    try {
      const live = new Map([['a', fakeSession('a', [])]]);
      const d = drainSessions({ live, graceMs: 2_000, log: silentLogger() });
      await vi.advanceTimersByTimeAsync(2_001);
      expect((await d.done).remaining).toBe(1);
      const c = drainSessions({ live, graceMs: 60_000, log: silentLogger() });
      c.cut();
      expect((await c.done).remaining).toBe(1);
      const notes: string[] = [];
      const none = drainSessions({ live: new Map(), graceMs: 60_000, log: silentLogger() });
      expect((await none.done).remaining).toBe(0);
      expect(notes).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('disk watch', () => {
  it('levels: floor, low under twice the floor, ok', () => {
    expect(diskLevel(99, 100)).toBe('floor');
    expect(diskLevel(100, 100)).toBe('low');
    expect(diskLevel(199, 100)).toBe('low');
    expect(diskLevel(200, 100)).toBe('ok');
  });

  it('warns once when free space falls under twice the floor, again after it recovered', () => {
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as { level: number; msg: string }); } });
    let free = 1_000;
    const w = startDiskWatch({ dir: '/', floor: 100, log, measure: () => free });
    free = 150; w.check(); w.check();
    free = 50; w.check();
    free = 500; w.check();
    free = 150; w.check();
    w.stop();
    expect(lines.map((l) => [l.level, l.msg.split(':')[0]])).toEqual([
      [40, 'free space for recordings is under twice recording.minFreeSpace'],
      [50, 'free space for recordings is under recording.minFreeSpace'],
      [30, 'free space for recordings is back above twice recording.minFreeSpace'],
      [40, 'free space for recordings is under twice recording.minFreeSpace'],
    ]);
    expect(w.free()).toBe(150);
  });
});
