import { afterEach, describe, expect, it } from 'vitest';
import { installBenchGc } from '../../../src/shared/benchgc.js';

describe('installBenchGc: the bench-only garbage collection on SIGUSR2', () => {
  const g = globalThis as { gc?: () => void };
  const had = g.gc;
  const listeners = process.listeners('SIGUSR2');
  afterEach(() => {
    g.gc = had;
    for (const l of process.listeners('SIGUSR2')) if (!listeners.includes(l)) process.off('SIGUSR2', l);
  });

  it('installs nothing on a normal server: no env flag, or no exposed gc', () => {
    g.gc = () => undefined;
    expect(installBenchGc({})).toBe(false);
    g.gc = undefined;
    expect(installBenchGc({ GATEHOUSE_BENCH_GC: '1' })).toBe(false);
    expect(process.listeners('SIGUSR2')).toEqual(listeners);
  });

  it('with both, SIGUSR2 runs a full collection', () => {
    let runs = 0;
    g.gc = () => { runs++; };
    expect(installBenchGc({ GATEHOUSE_BENCH_GC: '1' })).toBe(true);
    process.emit('SIGUSR2' as never);
    expect(runs).toBe(1);
  });
});
