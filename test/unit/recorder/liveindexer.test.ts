import { describe, expect, it } from 'vitest';
import { LiveIndex, LiveIndexer } from '../../../src/recorder/textindex.js';
import type { Store } from '../../../src/store/types.js';

/** A store whose index writes are synchronous, as SQLite's are: each one blocks the event loop while it runs. */
function fakeStore(log: string[]) {
  return {
    search: {
      index: async (sessionId: string, channel: number, chunks: { t: number; text: string }[]) => {
        log.push(`write ${sessionId}/${channel} ${chunks.map((c) => c.text).join('')}`);
      },
    },
  } as unknown as Store;
}

describe('LiveIndexer: the live index steps of a tick', () => {
  it('leave the event loop to the relay between two channels (one write per turn, not fifty in a row)', async () => {
    const log: string[] = [];
    const store = fakeStore(log);
    const indexer = new LiveIndexer(60_000);
    const channels = Array.from({ length: 50 }, (_, i) => new LiveIndex(store, `s${i}`, 0, (err) => { throw err; }));
    for (const l of channels) {
      indexer.add(l);
      l.add(0, Buffer.from('typed'));
    }
    // What a keystroke's echo is to the relay: I/O that arrives while the tick runs. Each turn of the
    // event loop it gets says how many writes ran before it.
    let relayTurns = 0;
    let stop = false;
    const relay = () => { if (stop) return; log.push('relay'); relayTurns++; setImmediate(relay); };
    setImmediate(relay);
    await indexer.tick();
    await new Promise((r) => setImmediate(r));
    stop = true;
    const writes = log.filter((l) => l.startsWith('write'));
    expect(writes).toHaveLength(50);
    // Between two relay turns there is at most one write: the longest run of writes is 1.
    let run = 0;
    let longest = 0;
    for (const l of log) { run = l.startsWith('write') ? run + 1 : 0; longest = Math.max(longest, run); }
    expect(longest).toBe(1);
    expect(relayTurns).toBeGreaterThanOrEqual(49);
    for (const l of channels) indexer.remove(l);
  });

  it('writes every channel once per tick, and a tick arriving while one is spreading does not write twice', async () => {
    const log: string[] = [];
    const store = fakeStore(log);
    const indexer = new LiveIndexer(60_000);
    const a = new LiveIndex(store, 'a', 0, (err) => { throw err; });
    const b = new LiveIndex(store, 'b', 1, (err) => { throw err; });
    const quiet = new LiveIndex(store, 'q', 0, (err) => { throw err; });
    for (const l of [a, b, quiet]) indexer.add(l);
    a.add(0, Buffer.from('one'));
    b.add(0, Buffer.from('two'));
    const first = indexer.tick();
    const second = indexer.tick(); // still spreading: a no-op
    await Promise.all([first, second]);
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['write a/0 one', 'write b/1 two']);
    // The next tick writes what arrived since, and only that.
    b.add(1, Buffer.from('three'));
    await indexer.tick();
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['write a/0 one', 'write b/1 two', 'write b/1 three']);
    for (const l of [a, b, quiet]) indexer.remove(l);
  });
});
