/**
 * Every audit event, one typed union with stable names. Names are part of the product contract
 * (SIEM rules match on them): add new ones, never rename. Payloads never carry secrets.
 */
export const ROLES = ['operator', 'auditor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const RIGHTS = ['shell', 'exec', 'sftp', 'forward'] as const;
export type Right = (typeof RIGHTS)[number];

export type AuthFailureReason =
  | 'unknown_key' | 'key_user_mismatch' | 'weak_signature' | 'bad_signature' | 'user_disabled' | 'locked' | 'no_totp'
  | 'wrong_code' | 'bad_code_format' | 'replayed_code' | 'too_many_attempts' | 'grace_timeout' | 'inner_key_mismatch'
  // Too many of the user's connections already wait at the TOTP prompt (auth.maxPendingMfa).
  | 'too_many_pending_mfa'
  // The user, key or TOTP enrolment changed between the key and the code: the login ends.
  | 'changed_during_login';

export type GrantWho = { kind: 'user'; name: string } | { kind: 'group'; name: string };
export type GrantWhere = { kind: 'host'; name: string } | { kind: 'host-group'; name: string } | { kind: 'all' };

export interface AuditPayloads {
  'admin.user.add': { user: string; roles: Role[] };
  'admin.user.disable': { user: string; reason: string };
  'admin.user.enable': { user: string };
  'admin.user.remove': { user: string };
  'admin.user.role.add': { user: string; role: Role };
  'admin.user.role.remove': { user: string; role: Role };
  'admin.user.unlock': { user: string };
  'admin.user.key.add': { user: string; keys: { fingerprint: string; type: string; bits: number; comment: string }[] };
  'admin.user.key.remove': { user: string; fingerprint: string };
  'admin.user.totp.enroll': { user: string; imported: boolean };
  'admin.user.totp.reset': { user: string };
  'admin.user.password': { user: string };
  'admin.group.add': { group: string };
  'admin.group.remove': { group: string };
  'admin.group.member.add': { group: string; user: string };
  'admin.group.member.remove': { group: string; user: string };
  'admin.host.add': { host: string; address: string; port: number; groups: string[]; hostKeyFingerprint: string | null };
  'admin.host.disable': { host: string };
  'admin.host.enable': { host: string };
  'admin.host.remove': { host: string };
  'admin.host.trust': { host: string; fingerprint: string; previous: string | null };
  'admin.grant.add': {
    grant: number; who: GrantWho; where: GrantWhere; logins: string[]; rights: Right[]; until: string | null; reason: string;
  };
  'admin.grant.remove': { grant: number; who: GrantWho; where: GrantWhere };
  'server.start': { version: string; ssh: string; web: string };
  'admin.session.kill': { session: string; user: string; reason: string };
  'session.terminated': { session: string; user: string; reason: string; channel?: number; host?: string; cause?: string };
  'forward.open': { session: string; user: string; host: string; port: number; login: string; grant: number };
  'forward.close': { session: string; user: string; host: string; port: number; bytesUp: number; bytesDown: number };
  'web.login': { user: string; source: string };
  'web.login_failed': { user: string; source: string; reason: string };
  'web.logout': { user: string; source: string };
  'web.live_view': { user: string; source: string; session: string; channel: number; sessionUser: string };
  'session.refused': { user: string; source: string; reason: string; live: number; limit: number };
  'auth.success': { user: string; key: string; source: string; method: 'publickey+totp' | 'publickey+grace' };
  'auth.failure': { user: string; source: string; reason: AuthFailureReason; key?: string };
  'auth.locked': { user: string; source: string; until: string };
  'access.denied': { user: string; source: string; host: string; login: string; action: string; reason: string; kind?: string; session?: string };
  'host.key_mismatch': { host: string; expected: string | null; presented: string; user: string; session: string };
  'target.connect_failed': { host: string; login: string; user: string; session: string; error: string };
  'session.start': { session: string; user: string; source: string; key: string };
  'session.channel': { session: string; user: string; channel: number; kind: string; host: string; login: string; command: string | null; grant: number };
  'session.end': { session: string; user: string; reason: string; durationMs: number; bytesUp: number; bytesDown: number };
  'recording.closed': { session: string; channel: number; user: string; file: string; state: string; size: number; sha256: string; seq: number };
  'recording.failed': { session: string; channel: number; user: string; error: string; required: boolean; phase: 'open' | 'write' };
  'recording.viewed': { session: string; sessionUser: string; how: 'play' | 'export' | 'web' };
  'recording.recovered': { session: string; channel: number; file: string; state: string; cutBytes: number; size: number; sha256: string };
  'server.stop': { signal: string };
}

export type AuditEventType = keyof AuditPayloads;

/** An event before the sink stamps its id, time and chain hash. */
export type AuditDraft = {
  [K in AuditEventType]: { type: K; actor: string; data: AuditPayloads[K] };
}[AuditEventType];

export interface AuditRecord {
  id: number;
  ts: number;
  type: string;
  actor: string;
  subject: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export function draft<K extends AuditEventType>(type: K, actor: string, data: AuditPayloads[K]): AuditDraft {
  return { type, actor, data } as AuditDraft;
}

/** The user an event concerns, for `gatehouse audit --user`. */
export function subjectOf(ev: AuditDraft): string | null {
  const d = ev.data as { user?: unknown; who?: GrantWho };
  if (typeof d.user === 'string') return d.user;
  return d.who?.kind === 'user' ? d.who.name : null;
}

function whoText(w: GrantWho): string {
  return w.kind === 'user' ? `user ${w.name}` : `group ${w.name}`;
}

export function whereText(w: GrantWhere): string {
  switch (w.kind) {
    case 'host': return `host ${w.name}`;
    case 'host-group': return `host group ${w.name}`;
    case 'all': return 'all hosts';
    default: { const never: never = w; return never; }
  }
}

/** One human line per event, for `gatehouse audit` and the web UI. Exhaustive by construction. */
export function describe(ev: AuditDraft): string {
  switch (ev.type) {
    case 'admin.user.add': return `added user ${ev.data.user} (${ev.data.roles.join(', ')})`;
    case 'admin.user.disable': return `disabled user ${ev.data.user}${ev.data.reason ? `: ${ev.data.reason}` : ''}`;
    case 'admin.user.enable': return `enabled user ${ev.data.user}`;
    case 'admin.user.remove': return `removed user ${ev.data.user}`;
    case 'admin.user.role.add': return `gave user ${ev.data.user} the ${ev.data.role} role`;
    case 'admin.user.role.remove': return `took the ${ev.data.role} role from user ${ev.data.user}`;
    case 'admin.user.unlock': return `cleared the lockout of user ${ev.data.user}`;
    case 'admin.user.key.add': return `added ${ev.data.keys.length} key(s) to user ${ev.data.user}: ${ev.data.keys.map((k) => k.fingerprint).join(', ')}`;
    case 'admin.user.key.remove': return `removed key ${ev.data.fingerprint} from user ${ev.data.user}`;
    case 'admin.user.totp.enroll': return `enrolled TOTP for user ${ev.data.user}${ev.data.imported ? ' (imported secret)' : ''}`;
    case 'admin.user.totp.reset': return `reset TOTP of user ${ev.data.user}`;
    case 'admin.user.password': return `set the web password of user ${ev.data.user}`;
    case 'admin.group.add': return `added group ${ev.data.group}`;
    case 'admin.group.remove': return `removed group ${ev.data.group}`;
    case 'admin.group.member.add': return `added user ${ev.data.user} to group ${ev.data.group}`;
    case 'admin.group.member.remove': return `removed user ${ev.data.user} from group ${ev.data.group}`;
    case 'admin.host.add': return `added host ${ev.data.host} (${ev.data.address}:${ev.data.port})${ev.data.hostKeyFingerprint ? `, pinned ${ev.data.hostKeyFingerprint}` : ''}`;
    case 'admin.host.disable': return `disabled host ${ev.data.host}`;
    case 'admin.host.enable': return `enabled host ${ev.data.host}`;
    case 'admin.host.remove': return `removed host ${ev.data.host}`;
    case 'admin.host.trust': return `pinned host key ${ev.data.fingerprint} for host ${ev.data.host}`;
    case 'admin.grant.add': return `added grant #${ev.data.grant}: ${whoText(ev.data.who)} → ${whereText(ev.data.where)} as ${ev.data.logins.join(',')} [${ev.data.rights.join(',')}]${ev.data.until ? ` until ${ev.data.until}` : ''}`;
    case 'admin.grant.remove': return `removed grant #${ev.data.grant}: ${whoText(ev.data.who)} → ${whereText(ev.data.where)}`;
    case 'admin.session.kill': return `asked to end session ${ev.data.session} of ${ev.data.user}${ev.data.reason ? `: ${ev.data.reason}` : ''}`;
    case 'session.terminated': return `session ${ev.data.session} of ${ev.data.user}${ev.data.channel !== undefined ? ` channel ${ev.data.channel}` : ''} ended: ${ev.data.reason}${ev.data.cause ? ` (after ${ev.data.cause})` : ''}`;
    case 'forward.open': return `${ev.data.user} forwards to ${ev.data.host}:${ev.data.port} (session ${ev.data.session}, grant #${ev.data.grant})`;
    case 'forward.close': return `forward of ${ev.data.user} to ${ev.data.host}:${ev.data.port} closed, ${ev.data.bytesUp} B up, ${ev.data.bytesDown} B down`;
    case 'web.login': return `${ev.data.user} logged in to the web UI from ${ev.data.source}`;
    case 'web.login_failed': return `web login of ${ev.data.user || '?'} from ${ev.data.source} refused: ${ev.data.reason}`;
    case 'web.logout': return `${ev.data.user} logged out of the web UI`;
    case 'web.live_view': return `${ev.data.user} watches session ${ev.data.session} (${ev.data.sessionUser || '?'}) channel ${ev.data.channel} live from ${ev.data.source}`;
    case 'session.refused': return `session of ${ev.data.user} from ${ev.data.source} refused: ${ev.data.reason} (${ev.data.live} live, limit ${ev.data.limit})`;
    case 'server.start': return `server started (ssh ${ev.data.ssh}, web ${ev.data.web})`;
    case 'server.stop': return `server stopped (${ev.data.signal})`;
    case 'auth.success': return `${ev.data.user} logged in from ${ev.data.source} (${ev.data.method}, ${ev.data.key})`;
    case 'auth.failure': return `login of ${ev.data.user || '?'} from ${ev.data.source} refused: ${ev.data.reason}`;
    case 'auth.locked': return `user ${ev.data.user} locked until ${ev.data.until} after repeated failures`;
    case 'access.denied': return `${ev.data.user} denied ${ev.data.action} as ${ev.data.login}@${ev.data.host}: ${ev.data.reason}`;
    case 'host.key_mismatch': return `host ${ev.data.host} presented ${ev.data.presented}, pinned ${ev.data.expected ?? 'nothing'}: refused`;
    case 'target.connect_failed': return `${ev.data.user} could not reach ${ev.data.login}@${ev.data.host}: ${ev.data.error}`;
    case 'session.start': return `session ${ev.data.session} of ${ev.data.user} from ${ev.data.source} started`;
    case 'session.channel': return `session ${ev.data.session} channel ${ev.data.channel}: ${ev.data.kind} as ${ev.data.login}@${ev.data.host}${ev.data.command ? ` ${JSON.stringify(ev.data.command)}` : ''}`;
    case 'recording.closed': return `recording ${ev.data.file} of session ${ev.data.session} closed (${ev.data.state}, ${ev.data.size} B, sha256 ${ev.data.sha256.slice(0, 16)}…)`;
    case 'recording.failed': return `recording of session ${ev.data.session} channel ${ev.data.channel} failed (${ev.data.phase}): ${ev.data.error}${ev.data.required ? '; session refused/ended' : '; continued unrecorded (recording.required: false)'}`;
    case 'recording.viewed': return `recording of session ${ev.data.session} (${ev.data.sessionUser}) viewed by ${ev.actor} (${ev.data.how})`;
    case 'recording.recovered': return `recording ${ev.data.file} of interrupted session ${ev.data.session} recovered (${ev.data.cutBytes} partial bytes cut)`;
    case 'session.end': return `session ${ev.data.session} of ${ev.data.user} ended (${ev.data.reason}), ${ev.data.bytesUp} B up, ${ev.data.bytesDown} B down`;
    default: { const never: never = ev; return String((never as { type: string }).type); }
  }
}
