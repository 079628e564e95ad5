import { afterEach, describe, expect, it, vi } from 'vitest';
import { AddressThrottle } from '../../../src/auth/throttle.js';
import { answerThrottle, PrimaryThrottle, type ThrottleAnswer, type ThrottleAsk } from '../../../src/cluster/throttle.js';
import { ManualClock } from '../../../src/shared/clock.js';

/**
 * The pre-auth throttle of `serve --workers N`: each worker asks the primary's one throttle, so a
 * guesser spreading failures over the workers is slowed down as if there were one process. The IPC
 * channel is replaced by direct calls (async, as process.send delivers).
 */
function machine(workers: number, opts: { primaryAnswers?: boolean } = {}) {
  const clock = new ManualClock(0);
  const primary = new AddressThrottle(clock);
  const ws: PrimaryThrottle[] = [];
  for (let i = 0; i < workers; i++) {
    const me: PrimaryThrottle = new PrimaryThrottle(new AddressThrottle(clock), (m: ThrottleAsk) => {
      setImmediate(() => {
        if (opts.primaryAnswers === false) return;
        answerThrottle(primary, m, (a: ThrottleAnswer) => setImmediate(() => me.receive(a)));
      });
    }, 50);
    ws.push(me);
  }
  return { clock, primary, ws };
}

describe('the pre-auth throttle shared by a machine\'s workers', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('failures spread over two workers grow one delay, as on one process', async () => {
    const { ws } = machine(2);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) delays.push(await ws[i % 2]!.failure('10.0.0.1'));
    expect(delays).toEqual([0, 250, 500, 1000, 2000, 4000, 8000, 8000]);
    expect(await ws[0]!.failure('10.0.0.2')).toBe(0);
  });

  it('a success on one worker clears the address for all', async () => {
    const { ws } = machine(2);
    for (let i = 0; i < 4; i++) await ws[i % 2]!.failure('10.0.0.1');
    ws[1]!.success('10.0.0.1');
    await new Promise((r) => setImmediate(r));
    expect(await ws[0]!.failure('10.0.0.1')).toBe(0);
  });

  it('a primary that does not answer in time: the worker\'s own throttle answers (never no slow-down)', async () => {
    const { ws } = machine(1, { primaryAnswers: false });
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) delays.push(await ws[0]!.failure('10.0.0.1'));
    expect(delays).toEqual([0, 250, 500, 1000]);
  });

  it('the primary ignores what is not a well-formed question (a huge address, a wrong type)', () => {
    const t = new AddressThrottle(new ManualClock(0));
    const replies: ThrottleAnswer[] = [];
    expect(answerThrottle(t, { gh: 'throttle', id: 1, op: 'failure', address: 'x'.repeat(10_000) }, (a) => replies.push(a))).toBe(false);
    expect(answerThrottle(t, { gh: 'throttle', id: 'a', op: 'failure', address: '1.2.3.4' }, (a) => replies.push(a))).toBe(false);
    expect(answerThrottle(t, { gh: 'ready' }, (a) => replies.push(a))).toBe(false);
    expect(answerThrottle(t, { gh: 'throttle', id: 2, op: 'failure', address: '1.2.3.4' }, (a) => replies.push(a))).toBe(true);
    expect(replies).toEqual([{ gh: 'throttle-answer', id: 2, delay: 0 }]);
  });
});
