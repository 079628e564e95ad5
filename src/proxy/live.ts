import type { Client } from 'ssh2';
import type { Identity } from '../auth/authenticator.js';
import type { Action, Grant } from '../auth/policy.js';
import { dial } from './dialer.js';

/** A relayed channel, as revocation sees it: what it was allowed by, and how to end it. */
export interface ActiveChannel {
  channel: number;
  grant: Grant;
  action: Action;
  tty: boolean;
  /** Say one line to the operator, then close the channel. */
  end(message: string): void;
  /** Write a line to the operator without ending anything (idle warning). */
  notify(message: string): void;
}

/**
 * One authenticated operator connection: who, from where, the target connections it opened (one
 * per login@host, shared by its channels, so ControlMaster multiplexing costs one upstream), and
 * the byte counts for the session row.
 */
export class LiveConnection {
  readonly channels = new Map<number, ActiveChannel>();
  /** Last input or output on any channel (idle timeout). */
  lastActivity: number;
  idleWarned = false;
  /** Set when the connection is refused after authentication (session limit): channels get this line. */
  refusal: string | null = null;
  bytesUp = 0;
  bytesDown = 0;
  /** Resolves once the session row exists. */
  ready: Promise<void> = Promise.resolve();
  private nextChannel = 0;
  private readonly upstreams = new Map<string, Promise<Client>>();
  private readonly closers = new Set<() => void>();
  /** Work that must finish before the session row is closed (recordings being finalized). */
  readonly pending = new Set<Promise<unknown>>();

  constructor(
    readonly id: string,
    readonly identity: Identity,
    readonly source: string,
    readonly startedAt: number,
    private readonly clientKey: Buffer,
  ) {
    this.lastActivity = startedAt;
  }

  track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  channelNumber(): number {
    return this.nextChannel++;
  }

  upstream(grant: Grant): Promise<Client> {
    const key = `${grant.login}@${grant.host}`;
    let p = this.upstreams.get(key);
    if (!p) {
      p = dial(grant, { clientKey: this.clientKey });
      this.upstreams.set(key, p);
      p.then((c) => {
        c.on('close', () => this.upstreams.delete(key));
        c.on('error', () => undefined);
      }, () => this.upstreams.delete(key));
    }
    return p;
  }

  /** Something to run when the connection ends (close a channel, end a relay). */
  onClose(fn: () => void): () => void {
    this.closers.add(fn);
    return () => this.closers.delete(fn);
  }

  closeUpstreams(): void {
    for (const fn of this.closers) fn();
    this.closers.clear();
    for (const p of this.upstreams.values()) p.then((c) => c.end(), () => undefined);
    this.upstreams.clear();
  }
}
