import { printable } from '../auth/admit.js';

/**
 * The multi-host form of command mode: `LOGIN@HOST1,HOST2 CMD` and `LOGIN@group:NAME CMD`. A line is
 * this form only when its first word has an `@` followed by a comma-separated list or `group:`; a
 * plain `LOGIN@HOST` stays the single-target form (proxy/target.ts). Parsing only checks the shape:
 * every host is decided by the gate, one by one, before anything runs.
 */
export const MAX_RUN_HOSTS = 200;

export interface MultiTarget {
  login: string;
  /** Host names (or unique addresses) as typed, duplicates dropped, in order; empty for a group. */
  hosts: string[];
  /** The host group named by `group:NAME`, or null. */
  group: string | null;
  command: string;
}

export type MultiParse = { ok: true; target: MultiTarget } | { ok: false; message: string };

const LOGIN_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
// A host name or an address (as hosts are added); nothing a shell, a URL or a terminal would read.
const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9.:_-]{0,252}$/;
const GROUP_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function firstWord(line: string): { word: string; rest: string } | null {
  const m = /^\s*(\S+)(?:\s+([\s\S]*))?$/.exec(line);
  return m ? { word: m[1]!, rest: m[2] ?? '' } : null;
}

export function isMultiTarget(line: string): boolean {
  const w = firstWord(line)?.word ?? '';
  const at = w.indexOf('@');
  if (at <= 0) return false;
  const where = w.slice(at + 1);
  return where.includes(',') || where.startsWith('group:');
}

export function parseMultiTarget(line: string, maxHosts = MAX_RUN_HOSTS): MultiParse {
  const fw = firstWord(line);
  if (!fw) return { ok: false, message: 'expected LOGIN@HOST1,HOST2 COMMAND or LOGIN@group:NAME COMMAND' };
  const at = fw.word.indexOf('@');
  const login = fw.word.slice(0, at);
  const where = fw.word.slice(at + 1);
  const command = fw.rest.trim() ? fw.rest : '';
  if (!LOGIN_RE.test(login)) return { ok: false, message: `"${printable(login)}" is not a login name` };
  if (!command) return { ok: false, message: 'a run on several hosts needs a command (interactive shells go to one host: LOGIN@HOST)' };
  if (where.startsWith('group:')) {
    const group = where.slice('group:'.length);
    if (!GROUP_RE.test(group)) return { ok: false, message: `"${printable(group)}" is not a host group name` };
    return { ok: true, target: { login, hosts: [], group, command } };
  }
  const parts = where.split(',');
  // Counted before anything else is looked at: a list of 10,000 names costs one split, no lookups.
  if (parts.length > maxHosts) return { ok: false, message: `at most ${maxHosts} hosts in one run (${parts.length} given); nothing ran` };
  const bad = parts.filter((p) => !HOST_RE.test(p));
  if (bad.length > 0) return { ok: false, message: `not a host name: ${bad.slice(0, 5).map((b) => `"${printable(b, 40)}"`).join(', ')}; nothing ran` };
  return { ok: true, target: { login, hosts: [...new Set(parts)], group: null, command } };
}
