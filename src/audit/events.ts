/**
 * Every audit event, one typed union with stable names. Names are part of the product contract
 * (SIEM rules match on them): add new ones, never rename. Payloads never carry secrets.
 */
export const ROLES = ['operator', 'auditor', 'admin', 'approver'] as const;
export type Role = (typeof ROLES)[number];

export const RIGHTS = ['shell', 'exec', 'sftp', 'forward', 'sftp-read'] as const;
export type Right = (typeof RIGHTS)[number];

export type AuthFailureReason =
  | 'unknown_key' | 'key_user_mismatch' | 'weak_signature' | 'bad_signature' | 'user_disabled' | 'locked' | 'no_totp'
  | 'wrong_code' | 'bad_code_format' | 'replayed_code' | 'too_many_attempts' | 'grace_timeout' | 'inner_key_mismatch'
  // Too many of the user's connections already wait at the TOTP prompt (auth.maxPendingMfa).
  | 'too_many_pending_mfa'
  // The user, key or TOTP enrolment changed between the key and the code: the login ends.
  | 'changed_during_login'
  // Security keys: the counter did not grow (cloned key or replay), no touch, no PIN when
  // the key is verify-required; a plain key for a user who must use a security key.
  | 'sk_counter' | 'sk_no_presence' | 'sk_no_verification' | 'security_key_required';

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
  'admin.user.security_key': { user: string; required: boolean };
  'admin.user.webauthn.add': { user: string; credential: string };
  'admin.user.webauthn.remove': { user: string; credential: string };
  'admin.group.add': { group: string };
  'admin.group.remove': { group: string };
  'admin.group.member.add': { group: string; user: string };
  'admin.group.member.remove': { group: string; user: string };
  'admin.host.add': { host: string; address: string; port: number; groups: string[]; hostKeyFingerprint: string | null; auth?: 'key' | 'cert' };
  'admin.host.disable': { host: string };
  'admin.host.enable': { host: string };
  'admin.host.remove': { host: string };
  'admin.host.trust': { host: string; fingerprint: string; previous: string | null };
  'admin.host.auth': { host: string; auth: 'key' | 'cert'; previous: 'key' | 'cert' };
  'admin.ca.rotate': { signing: string; next: string };
  'admin.ca.retire': { retired: string; signing: string };
  'admin.grant.add': {
    grant: number; who: GrantWho; where: GrantWhere; logins: string[]; rights: Right[]; until: string | null; reason: string;
    /** What made it, when not an admin by hand: `request:ID` (an approved access request). */
    source?: string;
  };
  'admin.grant.remove': { grant: number; who: GrantWho; where: GrantWhere };
  'server.start': { version: string; ssh: string; web: string };
  'admin.session.kill': { session: string; user: string; reason: string };
  'session.terminated': { session: string; user: string; reason: string; channel?: number; host?: string; cause?: string };
  'forward.open': { session: string; user: string; host: string; port: number; login: string; grant: number };
  'forward.close': { session: string; user: string; host: string; port: number; bytesUp: number; bytesDown: number };
  'web.login': { user: string; source: string; method?: 'totp' | 'webauthn' };
  'web.login_failed': { user: string; source: string; reason: string };
  'web.logout': { user: string; source: string };
  'web.live_view': { user: string; source: string; session: string; channel: number; sessionUser: string; via?: 'process' | 'spool' };
  'session.refused': { user: string; source: string; reason: string; live: number; limit: number };
  'auth.success': { user: string; key: string; source: string; method: 'publickey+totp' | 'publickey+grace' | 'publickey-sk' | 'publickey-sk+totp' };
  'auth.failure': { user: string; source: string; reason: AuthFailureReason; key?: string };
  'auth.locked': { user: string; source: string; until: string };
  'access.denied': { user: string; source: string; host: string; login: string; action: string; reason: string; kind?: string; session?: string };
  'host.key_mismatch': { host: string; expected: string | null; presented: string; user: string; session: string };
  'target.connect_failed': { host: string; login: string; user: string; session: string; error: string };
  'session.start': { session: string; user: string; source: string; key: string };
  'session.channel': { session: string; user: string; channel: number; kind: string; host: string; login: string; command: string | null; grant: number; certSerial?: string; certKeyId?: string; certValidBefore?: string };
  'session.end': { session: string; user: string; reason: string; durationMs: number; bytesUp: number; bytesDown: number };
  'recording.closed': { session: string; channel: number; user: string; file: string; state: string; size: number; sha256: string; seq: number };
  'recording.failed': { session: string; channel: number; user: string; error: string; required: boolean; phase: 'open' | 'write' };
  'recording.viewed': { session: string; sessionUser: string; how: 'play' | 'export' | 'web' };
  /** An auditor downloaded a search's result (every match), with the search that made it. */
  'sessions.exported': { format: 'csv' | 'json'; count: number; text: string | null; user: string | null; host: string | null; since: string | null; status: string | null; file?: string | null };
  'recording.recovered': { session: string; channel: number; file: string; state: string; cutBytes: number; size: number; sha256: string };
  'server.stop': { signal: string };
  /** A node's heartbeat stopped: a surviving node closed its open sessions as interrupted (cluster/). */
  'node.reaped': { node: string; by: string; lastHeartbeat: string; sessions: string[]; recordings: number };
  // File transfers, file by file (proxy/sftp): each names the session, the channel and the path.
  'sftp.open': FileOp & { flags: string[]; error?: string };
  'sftp.close': FileOp & { flags: string[]; direction: string; bytesRead: number; bytesWritten: number; size: number; sha256: string; partialReason?: string; unclosed?: boolean; content?: string };
  'sftp.rename': FileOp & { to: string; ok: boolean; error?: string };
  'sftp.remove': FileOp & { ok: boolean; error?: string };
  'sftp.mkdir': FileOp & { ok: boolean; error?: string };
  'sftp.rmdir': FileOp & { ok: boolean; error?: string };
  'sftp.setstat': FileOp & { ok: boolean; error?: string };
  'sftp.symlink': FileOp & { target: string; ok: boolean; error?: string };
  /** A write refused under the sftp-read right, answered SSH_FX_PERMISSION_DENIED by gatehouse. */
  'sftp.denied': FileOp & { op: string };
  'scp.file': FileOp & { direction: string; name: string; mode: string; size: number; bytes: number; sha256: string; content?: string };
  /** An rsync channel ended: whether its file list was read whole (`read`) or not (`unparsed`, with the reason). */
  'rsync.transfer': { session: string; channel: number; user: string; host: string; direction: string; fileList: string; entries: number; notListed?: number; reason?: string };
  /** One entry (not a directory) of an rsync file list, relative to the transfer's root (`root`: the command's paths). No hash: rsync sends deltas. */
  'rsync.file': { session: string; channel: number; user: string; host: string; direction: string; name: string; type: string; size: number; root: string };
  /** An auditor downloaded a transferred file's stored content (recording.fileContent). */
  'file.downloaded': { session: string; sessionUser: string; channel: number; path: string; sha256: string; size: number; how: 'cli' | 'web' };
  /** A malformed or over-limit SFTP/scp stream: the channel was ended. */
  'transfer.malformed': { session: string; channel: number; user: string; protocol: string; error: string };
  'admin.backup': { file: string; recordings: boolean; files: number; bytes: number };
  'admin.restore': { file: string; backupTakenAt: string; host: string };
  /**
   * `gatehouse migrate` copied this store from SQLite and checked the copy: the first event the new
   * store adds to the copied chain. `head`: the SQLite chain's head it continues (the `prev` of this event).
   */
  'admin.migrate': { from: string; to: string; auditRows: number; head: string; recordingsUploaded: number | null; recordingsChecked: number };
  'admin.session.hold': { session: string; user: string; reason: string };
  'admin.session.release': { session: string; user: string };
  // Just-in-time access requests (auth/requests.ts): `user` is the requester, the actor who acted.
  'request.created': RequestEvent & { login: string; target: string; durationMs: number };
  /** One approval of several needed (requests.approvals > 1): no grant yet. */
  'request.approval': RequestEvent & { approvals: number; needed: number; durationMs: number };
  'request.approved': RequestEvent & { login: string; target: string; grant: number; until: string; durationMs: number };
  'request.denied': RequestEvent;
  'request.expired': RequestEvent;
  'request.cancelled': RequestEvent;
  'request.revoked': RequestEvent & { grant: number | null };
  'recording.deleted': { session: string; channel: number; user: string; file: string; sha256: string; seq: number; reason: 'retention'; endedAt: string };
  /** A fleet scan of one host finished (src/fleet): the recorded session that ran the probe, and what it found. */
  'fleet.scan': { host: string; session: string | null; reachable: boolean; error?: string; pending?: number | null; security?: number | null; reboot?: boolean | null };
  /** A multi-host run (`LOGIN@H1,H2 CMD`): every host admitted, the command started on each (one channel per host). */
  'fleet.run': { session: string; user: string; login: string; hosts: string[]; command: string };
}

/** What every access-request event names. */
export interface RequestEvent { request: number; user: string; reason: string }

/** What every file event names. */
export interface FileOp { session: string; channel: number; user: string; host: string; path: string }

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
    case 'admin.user.webauthn.add': return `registered WebAuthn credential ${ev.data.credential} for user ${ev.data.user}`;
    case 'admin.user.webauthn.remove': return `removed WebAuthn credential ${ev.data.credential} of user ${ev.data.user}`;
    case 'admin.user.security_key': return ev.data.required ? `user ${ev.data.user} must log in with a security key` : `user ${ev.data.user} may log in with any key`;
    case 'admin.group.add': return `added group ${ev.data.group}`;
    case 'admin.group.remove': return `removed group ${ev.data.group}`;
    case 'admin.group.member.add': return `added user ${ev.data.user} to group ${ev.data.group}`;
    case 'admin.group.member.remove': return `removed user ${ev.data.user} from group ${ev.data.group}`;
    case 'admin.host.add': return `added host ${ev.data.host} (${ev.data.address}:${ev.data.port})${ev.data.hostKeyFingerprint ? `, pinned ${ev.data.hostKeyFingerprint}` : ''}`;
    case 'admin.host.disable': return `disabled host ${ev.data.host}`;
    case 'admin.host.enable': return `enabled host ${ev.data.host}`;
    case 'admin.host.remove': return `removed host ${ev.data.host}`;
    case 'admin.host.trust': return `pinned host key ${ev.data.fingerprint} for host ${ev.data.host}`;
    case 'admin.host.auth': return `host ${ev.data.host} now authenticates the bastion by ${ev.data.auth === 'cert' ? 'certificate' : 'static key'} (was ${ev.data.previous})`;
    case 'admin.ca.rotate': return `user CA rotation started: ${ev.data.next} added, ${ev.data.signing} still signs`;
    case 'admin.ca.retire': return `user CA ${ev.data.retired} retired, ${ev.data.signing} signs`;
    case 'admin.grant.add': return `added grant #${ev.data.grant}: ${whoText(ev.data.who)} → ${whereText(ev.data.where)} as ${ev.data.logins.join(',')} [${ev.data.rights.join(',')}]${ev.data.until ? ` until ${ev.data.until}` : ''}`;
    case 'admin.grant.remove': return `removed grant #${ev.data.grant}: ${whoText(ev.data.who)} → ${whereText(ev.data.where)}`;
    case 'admin.session.kill': return `asked to end session ${ev.data.session} of ${ev.data.user}${ev.data.reason ? `: ${ev.data.reason}` : ''}`;
    case 'session.terminated': return `session ${ev.data.session} of ${ev.data.user}${ev.data.channel !== undefined ? ` channel ${ev.data.channel}` : ''} ended: ${ev.data.reason}${ev.data.cause ? ` (after ${ev.data.cause})` : ''}`;
    case 'forward.open': return `${ev.data.user} forwards to ${ev.data.host}:${ev.data.port} (session ${ev.data.session}, grant #${ev.data.grant})`;
    case 'forward.close': return `forward of ${ev.data.user} to ${ev.data.host}:${ev.data.port} closed, ${ev.data.bytesUp} B up, ${ev.data.bytesDown} B down`;
    case 'web.login': return `${ev.data.user} logged in to the web UI from ${ev.data.source}${ev.data.method === 'webauthn' ? ' with a security key' : ''}`;
    case 'web.login_failed': return `web login of ${ev.data.user || '?'} from ${ev.data.source} refused: ${ev.data.reason}`;
    case 'web.logout': return `${ev.data.user} logged out of the web UI`;
    case 'web.live_view': return `${ev.data.user} watches session ${ev.data.session} (${ev.data.sessionUser || '?'}) channel ${ev.data.channel} live from ${ev.data.source}`;
    case 'session.refused': return `session of ${ev.data.user} from ${ev.data.source} refused: ${ev.data.reason} (${ev.data.live} live, limit ${ev.data.limit})`;
    case 'server.start': return `server started (ssh ${ev.data.ssh}, web ${ev.data.web})`;
    case 'server.stop': return `server stopped (${ev.data.signal})`;
    case 'node.reaped': return `node ${ev.data.node} silent since ${ev.data.lastHeartbeat}: ${ev.data.by} closed its ${ev.data.sessions.length} open session(s) as interrupted`;
    case 'sftp.open': return `${ev.data.user} opened ${ev.data.path} on ${ev.data.host} (${ev.data.flags.join(',')})${ev.data.error ? `: ${ev.data.error}` : ''}`;
    case 'sftp.close': return `${ev.data.user} closed ${ev.data.path} on ${ev.data.host}: ${ev.data.direction}, ${ev.data.size} B, sha256 ${ev.data.sha256}`;
    case 'sftp.rename': return `${ev.data.user} renamed ${ev.data.path} to ${ev.data.to} on ${ev.data.host}${ev.data.ok ? '' : ` (${ev.data.error})`}`;
    case 'sftp.remove': case 'sftp.mkdir': case 'sftp.rmdir': case 'sftp.setstat':
      return `${ev.data.user} ${ev.type.slice(5)} ${ev.data.path} on ${ev.data.host}${ev.data.ok ? '' : ` (${ev.data.error})`}`;
    case 'sftp.symlink': return `${ev.data.user} linked ${ev.data.path} → ${ev.data.target} on ${ev.data.host}${ev.data.ok ? '' : ` (${ev.data.error})`}`;
    case 'sftp.denied': return `${ev.data.user} refused ${ev.data.op} ${ev.data.path} on ${ev.data.host} (sftp-read)`;
    case 'scp.file': return `${ev.data.user} scp ${ev.data.direction} ${ev.data.path} on ${ev.data.host}: ${ev.data.size} B, sha256 ${ev.data.sha256}`;
    case 'rsync.transfer': return `${ev.data.user} rsync ${ev.data.direction} on ${ev.data.host} (session ${ev.data.session}): file list ${ev.data.fileList}, ${ev.data.entries} entries${ev.data.reason ? ` (${ev.data.reason})` : ''}`;
    case 'rsync.file': return `${ev.data.user} rsync ${ev.data.direction} ${ev.data.name} (${ev.data.type}, ${ev.data.size} B) on ${ev.data.host}, root ${ev.data.root}`;
    case 'file.downloaded': return `content of ${ev.data.path} (session ${ev.data.session} of ${ev.data.sessionUser}, ${ev.data.size} B) downloaded (${ev.data.how})`;
    case 'transfer.malformed': return `${ev.data.protocol} stream of session ${ev.data.session} channel ${ev.data.channel} ended: ${ev.data.error}`;
    case 'auth.success': return `${ev.data.user} logged in from ${ev.data.source} (${ev.data.method}, ${ev.data.key})`;
    case 'auth.failure': return `login of ${ev.data.user || '?'} from ${ev.data.source} refused: ${ev.data.reason}`;
    case 'auth.locked': return `user ${ev.data.user} locked until ${ev.data.until} after repeated failures`;
    case 'access.denied': return `${ev.data.user} denied ${ev.data.action} as ${ev.data.login}@${ev.data.host}: ${ev.data.reason}`;
    case 'host.key_mismatch': return `host ${ev.data.host} presented ${ev.data.presented}, pinned ${ev.data.expected ?? 'nothing'}: refused`;
    case 'target.connect_failed': return `${ev.data.user} could not reach ${ev.data.login}@${ev.data.host}: ${ev.data.error}`;
    case 'session.start': return `session ${ev.data.session} of ${ev.data.user} from ${ev.data.source} started`;
    case 'session.channel': return `session ${ev.data.session} channel ${ev.data.channel}: ${ev.data.kind} as ${ev.data.login}@${ev.data.host}${ev.data.command ? ` ${JSON.stringify(ev.data.command)}` : ''}${ev.data.certKeyId ? ` (certificate ${ev.data.certKeyId}, serial ${ev.data.certSerial})` : ''}`;
    case 'recording.closed': return `recording ${ev.data.file} of session ${ev.data.session} closed (${ev.data.state}, ${ev.data.size} B, sha256 ${ev.data.sha256.slice(0, 16)}…)`;
    case 'recording.failed': return `recording of session ${ev.data.session} channel ${ev.data.channel} failed (${ev.data.phase}): ${ev.data.error}${ev.data.required ? '; session refused/ended' : '; continued unrecorded (recording.required: false)'}`;
    case 'sessions.exported': return `${ev.actor} exported ${ev.data.count} session(s) as ${ev.data.format.toUpperCase()}${ev.data.text !== null ? ` (text "${ev.data.text}")` : ''}${ev.data.user ? ` user ${ev.data.user}` : ''}${ev.data.host ? ` host ${ev.data.host}` : ''}${ev.data.since ? ` since ${ev.data.since}` : ''}${ev.data.status ? ` status ${ev.data.status}` : ''}${ev.data.file ? ` file "${ev.data.file}"` : ''}`;
    case 'recording.viewed': return `recording of session ${ev.data.session} (${ev.data.sessionUser}) viewed by ${ev.actor} (${ev.data.how})`;
    case 'recording.recovered': return `recording ${ev.data.file} of interrupted session ${ev.data.session} recovered (${ev.data.cutBytes} partial bytes cut)`;
    case 'admin.backup': return `backup written to ${ev.data.file} (${ev.data.files} files, ${ev.data.bytes} B${ev.data.recordings ? '' : ', no recordings'})`;
    case 'admin.restore': return `data directory restored from ${ev.data.file} (backup of ${ev.data.host} taken ${ev.data.backupTakenAt})`;
    case 'admin.migrate': return `store migrated from ${ev.data.from} to ${ev.data.to}: ${ev.data.auditRows} audit events (head ${ev.data.head.slice(0, 16)}…), ${ev.data.recordingsChecked} recording(s) checked${ev.data.recordingsUploaded !== null ? `, ${ev.data.recordingsUploaded} uploaded` : ''}`;
    case 'admin.session.hold': return `legal hold on session ${ev.data.session} (${ev.data.user}): ${ev.data.reason}`;
    case 'admin.session.release': return `legal hold released on session ${ev.data.session} (${ev.data.user})`;
    case 'fleet.scan': return `fleet scan of ${ev.data.host}: ${ev.data.reachable ? `${ev.data.pending ?? '?'} update(s) pending, ${ev.data.security ?? '?'} security${ev.data.reboot ? ', reboot required' : ''}` : `failed (${ev.data.error ?? 'unreachable'})`}`;
    case 'fleet.run': return `${ev.data.user} runs "${ev.data.command.slice(0, 80)}" as ${ev.data.login} on ${ev.data.hosts.length} host(s): ${ev.data.hosts.slice(0, 10).join(', ')}${ev.data.hosts.length > 10 ? ', …' : ''} (session ${ev.data.session})`;
    case 'recording.deleted': return `recording ${ev.data.file} of session ${ev.data.session} deleted by retention (sha256 ${ev.data.sha256.slice(0, 16)}…)`;
    case 'request.created': return `${ev.data.user} requested ${ev.data.login}@${ev.data.target} for ${Math.round(ev.data.durationMs / 1000)}s (request #${ev.data.request}): ${ev.data.reason}`;
    case 'request.approval': return `${ev.actor} approved request #${ev.data.request} of ${ev.data.user} (${ev.data.approvals} of ${ev.data.needed})${ev.data.reason ? `: ${ev.data.reason}` : ''}`;
    case 'request.approved': return `${ev.actor} approved request #${ev.data.request} of ${ev.data.user}: grant #${ev.data.grant} for ${ev.data.login}@${ev.data.target} until ${ev.data.until}${ev.data.reason ? ` (${ev.data.reason})` : ''}`;
    case 'request.denied': case 'request.expired': case 'request.cancelled':
      return `request #${ev.data.request} of ${ev.data.user} ${ev.type.slice(8)} by ${ev.actor}${ev.data.reason ? `: ${ev.data.reason}` : ''}`;
    case 'request.revoked': return `request #${ev.data.request} of ${ev.data.user} revoked by ${ev.actor}${ev.data.grant !== null ? ` (grant #${ev.data.grant} removed)` : ''}${ev.data.reason ? `: ${ev.data.reason}` : ''}`;
    case 'session.end': return `session ${ev.data.session} of ${ev.data.user} ended (${ev.data.reason}), ${ev.data.bytesUp} B up, ${ev.data.bytesDown} B down`;
    default: { const never: never = ev; return String((never as { type: string }).type); }
  }
}
