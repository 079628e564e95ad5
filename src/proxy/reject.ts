import type { ServerChannel } from 'ssh2';

/**
 * Refusing a channel open with a reason the client prints
 * ("channel 0: open failed: administratively prohibited: …"). The two-argument reject comes from
 * our ssh2 patch; @types/ssh2 still describes it as reject().
 */
export const OPEN_FAILURE = { ADMINISTRATIVELY_PROHIBITED: 1, CONNECT_FAILED: 2, UNKNOWN_CHANNEL_TYPE: 3 } as const;

export function rejectWith(reject: () => void, code: number, description: string): void {
  (reject as unknown as (code: number, description: string) => void)(code, description);
}

/** End a session channel with one line for the operator and an exit status. */
export function refuse(down: ServerChannel, tty: boolean, message: string, status: number): void {
  const nl = tty ? '\r\n' : '\n';
  const text = `gatehouse: ${message.split('\n').join(nl)}${nl}`;
  // A client that keeps its window shut never lets the line through: close the channel anyway.
  const force = setTimeout(() => { try { down.close(); } catch { /* already closed */ } }, REFUSE_WAIT_MS);
  force.unref();
  try {
    down.stderr.write(text, () => {
      clearTimeout(force);
      try { down.exit(status); down.end(); } catch { /* already closed */ }
    });
  } catch {
    clearTimeout(force);
    /* channel already closed */
  }
}

const REFUSE_WAIT_MS = 2_000;
