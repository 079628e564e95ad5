import type { Transform } from 'node:stream';
import type { Right } from '../audit/events.js';

/**
 * What the relay tells its observers, in neutral terms: observers (recorder, counters, digest,
 * live view, file audit) depend on this module only, never on the proxy's connection objects, so
 * the proxy can change without touching them and an observer cannot reach into a connection.
 */
export interface ChannelInfo {
  sessionId: string;
  channel: number;
  user: string;
  host: string;
  login: string;
  kind: 'shell' | 'exec' | 'subsystem';
  /** The command (exec) or the subsystem name, as the operator sent it; null for a shell. */
  command: string | null;
  /** The right the channel was admitted with: `sftp` marks a file transfer. */
  action: Right;
  pty: { cols: number; rows: number; term: string } | null;
}

export interface ExitInfo {
  code: number | null;
  /** Signal name without "SIG", as in the SSH exit-signal message. */
  signal: string | null;
  coreDumped: boolean;
  description: string;
}

export interface ChannelObserver {
  onOutput?(data: Buffer, stream: 'stdout' | 'stderr'): void;
  onInput?(data: Buffer): void;
  onResize?(cols: number, rows: number): void;
  onEnd?(exit: ExitInfo, reason: 'target_closed' | 'client_closed'): void;
}

/** The recorder's observer: it can also write one marker line of gatehouse's own into the recording (the file audit's content markers). */
export interface RecordingObserver extends ChannelObserver {
  mark?(text: string): void;
}

/** What an observer may ask of the channel it watches. */
export interface ChannelControl {
  /** End the channel now with one line for the operator (e.g. the recording failed). */
  abort(message: string): void;
  /** Keep the session open until this finishes (a recording being finalized). */
  track(p: Promise<unknown>): void;
  /** The connection's own counters (bytes for the session row, activity for the idle timeout). */
  counter: ChannelObserver;
  /**
   * Stand in the channel's byte path (called while the observers are built; at most one per
   * channel), for a right that must decide what reaches the target: `sftp-read` refuses writes and
   * answers the operator itself.
   */
  filter(f: ChannelFilter): void;
}

/**
 * Builds the observers of one relayed channel. May reject: the channel is then refused with the
 * error's message (recording fails closed).
 */
export type ObserverFactory = (info: ChannelInfo, ctl: ChannelControl) => Promise<ChannelObserver[]>;

/**
 * The relay pipes operator → toTarget → target and target (stdout) → toOperator → operator.
 * Observers still see the bytes as each side sent them (onInput, onOutput).
 */
export interface ChannelFilter {
  toTarget: Transform;
  toOperator: Transform;
}
