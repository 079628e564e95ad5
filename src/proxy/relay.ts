import type { ClientChannel, ServerChannel } from 'ssh2';
import type { ChannelFilter, ChannelObserver, ExitInfo } from '../shared/channel.js';

export type { ChannelInfo, ChannelObserver, ExitInfo } from '../shared/channel.js';

/**
 * The relay moves bytes between the operator's channel (down) and the target's (up) and tells
 * observers what passed; it knows nothing about recording or accounting. Rules it follows (see
 * shared/notes/ssh2.md Q2):
 *  - backpressure end to end: pipe() only, so ssh2's window bounds memory on both hops;
 *  - stdout and stderr stay apart and in order per stream;
 *  - the operator's EOF reaches the target as EOF (half-close), not as a close;
 *  - the channel finishes in order: target closed, stdout and stderr drained, then exit status,
 *    then EOF/CLOSE — a plain up.pipe(down) would send EOF+CLOSE first and lose the exit status.
 */
/**
 * Fan each event out to every observer; an observer's exception must not break the session. The
 * per-event lists are built once: onOutput/onInput run for every chunk on the relay's hot path.
 */
export function fanOut(observers: ChannelObserver[], onError: (err: unknown) => void): Required<ChannelObserver> {
  const out = observers.filter((o) => o.onOutput);
  const inp = observers.filter((o) => o.onInput);
  const resize = observers.filter((o) => o.onResize);
  const end = observers.filter((o) => o.onEnd);
  return {
    onOutput: (d, s) => { for (const o of out) try { o.onOutput!(d, s); } catch (err) { onError(err); } },
    onInput: (d) => { for (const o of inp) try { o.onInput!(d); } catch (err) { onError(err); } },
    onResize: (c, r) => { for (const o of resize) try { o.onResize!(c, r); } catch (err) { onError(err); } },
    onEnd: (e, r) => { for (const o of end) try { o.onEnd!(e, r); } catch (err) { onError(err); } },
  };
}

const NO_EXIT: ExitInfo = { code: null, signal: null, coreDumped: false, description: '' };
const exits = new WeakMap<ClientChannel, ExitInfo>();

/**
 * Keep the target's exit status from the moment its channel exists. ssh2 emits 'exit' while it
 * parses a socket read, and a command that ends at once can send its status in the same read as
 * the exec reply: a listener added after an `await` (as the relay is) would miss it, and the
 * operator would get no status. Call it synchronously in the exec/shell/subsys callback.
 */
export function watchExit(up: ClientChannel): ClientChannel {
  if (exits.has(up)) return up;
  exits.set(up, NO_EXIT);
  up.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
    exits.set(up, typeof code === 'number'
      ? { code, signal: null, coreDumped: false, description: '' }
      : { code: null, signal: (signal ?? 'KILL').replace(/^SIG/, ''), coreDumped: !!dump, description: desc ?? '' });
  });
  return up;
}

/** The exit status watchExit has seen so far (none yet: code and signal null). */
export function exitOf(up: ClientChannel): ExitInfo {
  return exits.get(up) ?? NO_EXIT;
}

const writeDone = (w: NodeJS.WritableStream & { write(chunk: Buffer, cb: (err?: Error | null) => void): boolean }) =>
  new Promise<void>((resolve) => w.write(Buffer.alloc(0), () => resolve()));

export function relayChannel(down: ServerChannel, up: ClientChannel, obs: Required<ChannelObserver>, filter?: ChannelFilter): Promise<ExitInfo> {
  return new Promise((resolve) => {
    watchExit(up);
    let finished = false;
    const ignore = () => undefined;
    // Errors on either side end up as a close; every stream needs a listener or node crashes.
    down.on('error', ignore);
    down.stderr.on('error', ignore);
    up.on('error', ignore);
    up.stderr.on('error', ignore);

    // operator → target
    down.on('data', (d: Buffer) => obs.onInput(d));
    if (filter) down.pipe(filter.toTarget).pipe(up);
    else down.pipe(up);

    // target → operator
    up.on('data', (d: Buffer) => obs.onOutput(d, 'stdout'));
    up.stderr.on('data', (d: Buffer) => obs.onOutput(d, 'stderr'));
    if (filter) up.pipe(filter.toOperator).pipe(down, { end: false });
    else up.pipe(down, { end: false });
    up.stderr.pipe(down.stderr, { end: false });

    const downClosed = new Promise<void>((r) => down.once('close', () => r()));
    let upClosed = false;
    let errEnded = false;
    const finish = async (reason: 'target_closed' | 'client_closed') => {
      if (finished) return;
      finished = true;
      const exit = exitOf(up);
      if (reason === 'target_closed') {
        // Both output streams are fully handed to ssh2 (and window-limited) before exit and close,
        // unless the operator's side closes first (a client that never opens its window).
        await Promise.race([Promise.all([writeDone(down as never), writeDone(down.stderr as never)]), downClosed]);
        try {
          if (exit.signal !== null) down.exit(exit.signal, exit.coreDumped, exit.description);
          else if (exit.code !== null) down.exit(exit.code);
        } catch { /* channel already gone */ }
        down.end();
      } else {
        up.close();
      }
      obs.onEnd(exit, reason);
      resolve(exit);
    };
    const maybeFinish = () => { if (upClosed && errEnded) void finish('target_closed'); };
    up.on('close', () => { upClosed = true; maybeFinish(); });
    up.stderr.on('end', () => { errEnded = true; maybeFinish(); });
    up.stderr.on('close', () => { errEnded = true; maybeFinish(); });
    down.on('close', () => { void finish('client_closed'); });
  });
}
