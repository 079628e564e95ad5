import { printable } from '../auth/admit.js';
import { isTransferCommand } from './transfer.js';

/** What the operator asked for in command mode: `ssh alice@bastion LOGIN@HOST [COMMAND…]`. */
export interface TargetRequest {
  login: string;
  host: string;
  /** The command exactly as typed after the target, or null for an interactive shell. */
  command: string | null;
  /** A subsystem (only "sftp"), on an inner `ssh -J` connection. */
  subsystem?: string;
}

export type TargetParse = { ok: true; target: TargetRequest } | { ok: false; message: string };

export function parseTarget(execCommand: string): TargetParse {
  const m = /^\s*(\S+)(?:\s+([\s\S]*))?$/.exec(execCommand);
  if (!m) return { ok: false, message: 'expected LOGIN@HOST [COMMAND]' };
  const word = m[1]!;
  const at = word.lastIndexOf('@');
  if (at <= 0 || at === word.length - 1) return { ok: false, message: `"${printable(word)}" is not LOGIN@HOST (usage: ssh -p PORT you@bastion LOGIN@HOST [COMMAND])` };
  const rest = m[2]?.trim() ? m[2] : null;
  return { ok: true, target: { login: word.slice(0, at), host: word.slice(at + 1), command: rest ?? null } };
}

/**
 * File transfers get their command, byte counts and hashes recorded, and need the `sftp` right.
 * An exec is one only when its whole command is exactly a form the transfer clients send (see
 * transfer.ts); anything more is exec, authorized and recorded as such.
 */
export function isFileTransfer(kind: 'shell' | 'exec' | 'subsystem', command: string | null): boolean {
  if (kind === 'subsystem') return true;
  if (kind !== 'exec' || command === null) return false;
  return isTransferCommand(command);
}
