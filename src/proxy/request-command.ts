import type { ServerChannel } from 'ssh2';
import { printable, type Requester } from '../auth/admit.js';
import { checkReason, targetText, type AccessRequestRecord, type RequestTarget } from '../auth/requests.js';
import type { Config } from '../config/schema.js';
import { isoTime } from '../shared/clock.js';
import { GatehouseError } from '../shared/errors.js';
import { checkLogin, checkName } from '../shared/names.js';
import { formatDuration, parseDuration } from '../shared/units.js';
import type { Store } from '../store/types.js';
import type { OperatorConnection } from './connection.js';
import { refuse } from './reject.js';

/**
 * `ssh alice@bastion request LOGIN@HOST|LOGIN@group:NAME [--for 1h] --reason TEXT [--wait]`: an
 * operator asks for just-in-time access (auth/requests.ts). The first word is exactly `request`,
 * with no `@`: a target is always LOGIN@HOST, so `root@request` (a host named request) is a target
 * and never this command. The request is always the logged-in user's own: there is no option to
 * name another user. Whether access is already there is the gate's answer (admit, quiet).
 */
export interface RequestCommandDeps {
  store: Store;
  config: Config;
}

export const REQUEST_WORD = 'request';

/** Is this exec line the request command (and not a target)? */
export function isRequestCommand(line: string): boolean {
  return /^\s*request(?:\s|$)/.test(line);
}

export interface ParsedRequest {
  login: string;
  target: RequestTarget;
  durationMs: number | null;
  reason: string;
  wait: boolean;
}

const USAGE = 'usage: request LOGIN@HOST|LOGIN@group:NAME [--for 1h] --reason TEXT [--wait] | request list | request cancel ID [--reason TEXT]';
const OPTIONS = new Set(['--for', '--reason', '--wait']);

/** Words as the shell would pass them through ssh: whitespace-separated, '…' and "…" kept whole. */
function words(line: string): string[] | null {
  const out: string[] = [];
  let cur: string | null = null;
  let quote: string | null = null;
  for (const ch of line) {
    if (quote !== null) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      cur ??= '';
    } else if (/\s/.test(ch)) {
      if (cur !== null) out.push(cur);
      cur = null;
    } else {
      cur = (cur ?? '') + ch;
    }
  }
  if (quote !== null) return null;
  if (cur !== null) out.push(cur);
  return out;
}

/** `request list` and `request cancel ID [--reason TEXT]`: words a target (always with `@`) cannot be. */
export type Subcommand = { kind: 'list' } | { kind: 'cancel'; id: number; reason: string };

export function parseSubcommand(line: string): { ok: true; sub: Subcommand } | { ok: false; message: string } | null {
  const w = words(line);
  if (!w || w[0] !== REQUEST_WORD || (w[1] !== 'list' && w[1] !== 'cancel')) return null;
  const fail = (message: string) => ({ ok: false as const, message: `${message}\n${USAGE}` });
  if (w[1] === 'list') return w.length === 2 ? { ok: true, sub: { kind: 'list' } } : fail('request list takes no arguments');
  if (!/^#?[0-9]{1,12}$/.test(w[2] ?? '')) return fail('request cancel needs a request id');
  const rest = w.slice(3);
  let reasonText = '';
  if (rest.length > 0) {
    if (rest[0] !== '--reason' || rest.length < 2 || rest.slice(1).some((x) => x.startsWith('--'))) return fail('request cancel ID takes only --reason TEXT');
    reasonText = rest.slice(1).join(' ');
  }
  const r = checkReason(reasonText, false);
  if (!r.ok) return fail(r.message);
  return { ok: true, sub: { kind: 'cancel', id: Number(w[2]!.replace('#', '')), reason: r.reason } };
}

/** Strict: every problem is a message, nothing is guessed. `maxDurationMs` bounds --for. */
export function parseRequest(line: string, maxDurationMs: number): { ok: true; req: ParsedRequest } | { ok: false; message: string } {
  const fail = (message: string) => ({ ok: false as const, message: `${message}\n${USAGE}` });
  const w = words(line);
  if (!w) return fail('unbalanced quote');
  if (w.shift() !== REQUEST_WORD) return fail('not a request');
  let targetWord: string | null = null;
  let forText: string | null = null;
  let reason: string[] | null = null;
  let wait = false;
  for (let i = 0; i < w.length; i++) {
    let word = w[i]!;
    let inline: string | null = null;
    const eq = word.indexOf('=');
    if (word.startsWith('--') && eq > 0 && OPTIONS.has(word.slice(0, eq))) { inline = word.slice(eq + 1); word = word.slice(0, eq); }
    if (word === '--wait') {
      if (inline !== null) return fail('--wait takes no value');
      if (wait) return fail('--wait given twice');
      wait = true;
    } else if (word === '--for') {
      if (forText !== null) return fail('--for given twice');
      forText = inline ?? w[++i] ?? '';
    } else if (word === '--reason') {
      if (reason !== null) return fail('--reason given twice');
      // The reason is every word up to the next option: ssh joins its arguments with spaces.
      reason = inline !== null ? [inline] : [];
      // A word that looks like an option is never swallowed into the reason (`--user carol`).
      while (i + 1 < w.length && !w[i + 1]!.startsWith('--')) reason.push(w[++i]!);
    } else if (word.startsWith('-')) {
      return fail(`unknown option "${printable(word, 40)}"`);
    } else if (targetWord === null) {
      targetWord = word;
    } else {
      return fail(`unexpected "${printable(word, 40)}": one target per request`);
    }
  }
  if (targetWord === null) return fail('which target?');
  const at = targetWord.lastIndexOf('@');
  if (at <= 0) return fail(`"${printable(targetWord, 80)}" is not LOGIN@HOST`);
  const login = targetWord.slice(0, at);
  const where = targetWord.slice(at + 1);
  let target: RequestTarget;
  try {
    checkLogin(login);
    target = where.startsWith('group:') ? { kind: 'host-group', name: checkName('host group', where.slice(6)) } : { kind: 'host', name: checkName('host', where) };
  } catch (err) {
    return fail(err instanceof GatehouseError ? err.message : 'bad target');
  }
  let durationMs: number | null = null;
  if (forText !== null) {
    const ms = parseDuration(forText);
    if (ms === null || ms <= 0) return fail(`--for: "${printable(forText, 40)}" is not a duration (e.g. 20s, 30m, 1h)`);
    if (ms > maxDurationMs) return fail(`--for ${printable(forText, 40)} is longer than allowed (${formatDuration(maxDurationMs)})`);
    durationMs = ms;
  }
  const r = checkReason((reason ?? []).join(' '), true);
  if (!r.ok) return fail(r.message);
  return { ok: true, req: { login, target, durationMs, reason: r.reason, wait } };
}

const POLL_MS = 500;

/** Run the command on a session channel: print the outcome, exit 0 (created/granted) or 1. */
export async function runRequestCommand(down: ServerChannel, conn: OperatorConnection, line: string, deps: RequestCommandDeps): Promise<void> {
  const { store, config } = deps;
  const sub = parseSubcommand(line);
  if (sub) return sub.ok ? runSubcommand(down, conn, sub.sub, deps) : refuse(down, false, sub.message, 2);
  const parsed = parseRequest(line, config.requests.maxDuration);
  if (!parsed.ok) return refuse(down, false, parsed.message, 2);
  const { req } = parsed;
  const who: Requester = { identity: conn.identity, source: conn.source, session: conn.id };
  const me = await conn.gate.identity(conn.identity);
  if (!me.ok) return refuse(down, false, `request refused: ${me.message}`, 1);

  // Already granted? The gate decides, for the host or every host of the group.
  const hosts = req.target.kind === 'host' ? [req.target.name] : (await store.hosts.list()).filter((h) => h.groups.includes(req.target.name)).map((h) => h.name);
  if (hosts.length === 0) return refuse(down, false, `no host is in host group ${req.target.name}`, 1);
  let granted = 0;
  for (const host of hosts) {
    const d = await conn.gate.admit(who, { host, login: req.login, action: 'shell', kind: 'request' }, conn.now(), { quiet: true });
    if (d.allow) granted++;
    else if (d.reason === 'unknown_host' || d.reason === 'host_disabled') return refuse(down, false, d.message, 1);
  }
  const target = `${req.login}@${targetText(req.target)}`;
  if (granted === hosts.length) return say(down, `already granted: you may reach ${target} now; no request was made\n`, 0);

  let result: { created: boolean; request: AccessRequestRecord };
  try {
    result = await store.requests.create({
      user: me.user.name, login: req.login, target: req.target, reason: req.reason,
      durationMs: req.durationMs ?? config.requests.defaultDuration, expiresAt: conn.now() + config.requests.pendingTtl,
    }, { maxOpen: config.requests.maxOpen });
  } catch (err) {
    if (err instanceof GatehouseError) return refuse(down, false, `request refused: ${err.message}`, 1);
    throw err;
  }
  const r = result.request;
  const approvers = (await store.users.list()).filter((u) => u.roles.includes('approver') && !u.disabled && u.name !== me.user.name).map((u) => u.name);
  const lines = [
    result.created ? `request #${r.id} created: ${target} for ${formatDuration(r.durationMs)}` : `request #${r.id} for ${target} is already pending (the same request is not made twice)`,
    approvers.length > 0 ? `who can approve: ${approvers.join(', ')} (approver role), or an admin on the bastion` : 'who can approve: an admin on the bastion (no user has the approver role)',
    `it expires unless decided by ${isoTime(r.expiresAt)}`,
  ];
  if (!req.wait) return say(down, `${lines.join('\n')}\n`, 0);
  down.write(`${lines.join('\n')}\nwaiting for a decision (at most ${formatDuration(config.requests.waitMax)})…\n`);
  const end = await waitFor(down, conn, store, r.id, config.requests.waitMax);
  say(down, `${end.text}\n`, end.status);
}

/** The operator's own requests, or cancelling one of them (never anyone else's). */
async function runSubcommand(down: ServerChannel, conn: OperatorConnection, sub: Subcommand, deps: RequestCommandDeps): Promise<void> {
  const { store, config } = deps;
  const me = await conn.gate.identity(conn.identity);
  if (!me.ok) return refuse(down, false, `request refused: ${me.message}`, 1);
  if (sub.kind === 'list') {
    await store.requests.expireDue();
    const mine = await store.requests.list({ user: me.user.name, limit: 20 });
    const lines = mine.map((r) => `#${r.id}  ${r.state.padEnd(9)}  ${r.login}@${targetText(r.target)}  ${formatDuration(r.durationMs)}  ${printable(r.reason, 60)}`);
    return say(down, `${lines.length ? lines.join('\n') : 'you have no requests'}\n`, 0);
  }
  const r = await store.requests.get(sub.id);
  // Someone else's request is answered like a missing one: ids say nothing about other users.
  if (!r || r.user !== me.user.name) return refuse(down, false, `you have no request #${sub.id}`, 1);
  try {
    const done = await store.requests.decide(sub.id, { kind: 'cancel', by: me.user.name, reason: sub.reason }, { approvals: config.requests.approvals });
    return say(down, `request #${done.id} cancelled\n`, 0);
  } catch (err) {
    if (err instanceof GatehouseError) return refuse(down, false, err.message, 1);
    throw err;
  }
}

async function waitFor(down: ServerChannel, conn: OperatorConnection, store: Store, id: number, waitMax: number): Promise<{ text: string; status: number }> {
  let closed = false;
  down.once('close', () => { closed = true; });
  const until = conn.now() + waitMax;
  // Bounded by time (waitMax) and by the channel: nothing runs on once the operator has gone.
  while (!closed && conn.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const r = await store.requests.get(id);
    if (!r) return { text: `request #${id} is gone`, status: 1 };
    if (r.state === 'pending' && r.expiresAt <= conn.now()) await store.requests.expireDue();
    else if (r.state !== 'pending') return outcome(r);
  }
  return { text: `request #${id} is still pending after ${formatDuration(waitMax)}; check again later`, status: 1 };
}

function outcome(r: AccessRequestRecord): { text: string; status: number } {
  const by = r.decidedBy ? ` by ${r.decidedBy}` : '';
  const why = r.decisionReason ? `: ${printable(r.decisionReason, 500)}` : '';
  if (r.state === 'approved') return { text: `approved${by}: you may reach ${r.login}@${targetText(r.target)} until ${isoTime(r.grantUntil!)}`, status: 0 };
  return { text: `request #${r.id} ${r.state}${by}${why}`, status: 1 };
}

function say(down: ServerChannel, text: string, status: number): void {
  try {
    down.write(text, () => { try { down.exit(status); down.end(); } catch { /* closed */ } });
  } catch { /* closed */ }
}
