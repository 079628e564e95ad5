import type { AuditRecord, GrantWhere, GrantWho, Right, Role } from '../audit/events.js';
import type { AccessRequestRecord, RequestPolicy, RequestState, RequestTarget, Transition } from '../auth/requests.js';

export type { AccessRequestRecord } from '../auth/requests.js';

/** What an operator asks for (`ssh … request LOGIN@HOST`). */
export interface NewAccessRequest {
  user: string;
  login: string;
  target: RequestTarget;
  reason: string;
  durationMs: number;
  /** When the pending request expires. */
  expiresAt: number;
}

/**
 * The one interface the rest of gatehouse uses for state. The SQLite backend implements it today;
 * a PostgreSQL backend for several nodes is planned, which is why every call is async and every
 * change is one call that writes its own audit event in the same transaction.
 */
export interface UserRecord {
  id: number;
  name: string;
  roles: Role[];
  disabled: boolean;
  disabledReason: string | null;
  hasPassword: boolean;
  totpEnrolled: boolean;
  groups: string[];
  createdAt: number;
  /** Only security keys (sk-…) may log in: plain keys are refused. */
  requireSecurityKey: boolean;
}

export interface KeyRecord {
  id: number;
  user: string;
  fingerprint: string;
  type: string;
  bits: number;
  publicKey: string;
  comment: string;
  createdAt: number;
  /** Security keys: signatures must carry the user-verification flag (PIN or biometric). */
  verifyRequired: boolean;
  /** Security keys: the last signature counter accepted (null before the first login). */
  skCounter: number | null;
}

/** A WebAuthn credential (a security key registered in the browser) for the web login. */
export interface WebauthnCredentialRecord {
  id: number;
  userId: number;
  user: string;
  /** As the browser names it: base64url. */
  credentialId: string;
  /** COSE-encoded public key. */
  publicKey: Buffer;
  counter: number;
  transports: string[];
  createdAt: number;
  lastUsedAt: number | null;
}

export interface NewWebauthnCredential {
  credentialId: string;
  publicKey: Buffer;
  counter: number;
  transports: string[];
}

export interface NewKey {
  fingerprint: string;
  type: string;
  bits: number;
  publicKey: string;
  comment: string;
  verifyRequired?: boolean;
}

export interface TotpRecord {
  userId: number;
  sealedSecret: Buffer;
  lastStep: number | null;
  /** Changes when TOTP is reset and enrolled again: sessions authenticated before end. */
  createdAt: number;
}

export interface KillRequest {
  id: number;
  sessionId: string;
  reason: string;
  actor: string;
}

export interface GroupRecord {
  id: number;
  name: string;
  members: string[];
}

export interface HostRecord {
  id: number;
  name: string;
  address: string;
  port: number;
  hostKey: string | null;
  enabled: boolean;
  groups: string[];
  createdAt: number;
  /** How the bastion logs in to it: its static client key, or a short-lived certificate. Absent: key. */
  auth?: TargetAuthMode;
}

export type TargetAuthMode = 'key' | 'cert';

export interface NewHost {
  name: string;
  address: string;
  port: number;
  groups: string[];
  hostKey: string | null;
  hostKeyFingerprint: string | null;
  /** Default key. */
  auth?: TargetAuthMode;
}

export interface GrantRecord {
  id: number;
  who: GrantWho;
  where: GrantWhere;
  logins: string[];
  rights: Right[];
  until: number | null;
  reason: string;
  createdBy: string;
  createdAt: number;
  /** What made it when not `grant add`: `request:ID` for an approved access request. */
  source?: string;
}

export type NewGrant = Omit<GrantRecord, 'id' | 'createdAt' | 'createdBy'>;

export interface SessionRecord {
  id: string;
  user: string;
  keyFingerprint: string | null;
  sourceAddr: string;
  host: string | null;
  login: string | null;
  mode: string;
  grantId: number | null;
  startedAt: number;
  endedAt: number | null;
  endReason: string | null;
  bytesUp: number;
  bytesDown: number;
  /** The server that ran it (null: recorded before sessions named their node). */
  node: string | null;
}

/** A file an SFTP or scp channel moved (proxy/sftp). */
export interface FileRecord {
  sessionId: string;
  channel: number;
  protocol: string;
  /** upload (operator → target), download, or both (read and written through one handle). */
  direction: string;
  path: string;
  /** Bytes moved. */
  size: number;
  /** Hex SHA-256 of the whole file, or `partial` when the pieces did not add up to it. */
  sha256: string;
  at: number;
}

export interface ChannelRecord {
  sessionId: string;
  channel: number;
  kind: string;
  command: string | null;
  host: string | null;
  login: string | null;
  pty: boolean;
  stdinBytes: number;
  stdoutBytes: number;
  stderrBytes: number;
  startedAt: number;
  endedAt: number | null;
  exitStatus: number | null;
  exitSignal: string | null;
}

/** Where a hash chain ends: what a signed checkpoint commits to. */
export interface ChainHead {
  count: number;
  hash: string;
}

export type RecordingState = 'open' | 'closed' | 'interrupted' | 'failed';

export interface RecordingRecord {
  sessionId: string;
  channel: number;
  path: string;
  kind: 'terminal' | 'transfer';
  state: RecordingState;
  truncated: boolean;
  size: number | null;
  sha256: string | null;
  seq: number | null;
  prevHash: string | null;
  chainHash: string | null;
  signature: string | null;
  startedAt: number;
  endedAt: number | null;
  /** When retention deleted the file (the row stays, with its hash, in the chain). */
  deletedAt?: number | null;
}

/** Hashes and counts of the complete raw streams of a channel (what an auditor matches a file against). */
export interface StreamDigests {
  stdinBytes: number;
  stdoutBytes: number;
  stderrBytes: number;
  stdinSha256: string;
  stdoutSha256: string;
  stderrSha256: string;
}

export interface AuditFilter {
  since?: number | undefined;
  /** Exact type, or a prefix: "admin.user" matches admin.user.*; "admin.*" works too. */
  type?: string | undefined;
  user?: string | undefined;
  /** Events about one session (data.session). */
  session?: string | undefined;
  limit?: number | undefined;
}

export interface SessionFilter {
  live?: boolean | undefined;
  user?: string | undefined;
  host?: string | undefined;
  since?: number | undefined;
  limit?: number | undefined;
  offset?: number | undefined;
  status?: SessionStatus | undefined;
  /** Only these session ids (a full-text search narrows to them first). */
  ids?: string[] | undefined;
  /** Only sessions that moved a file (sftp, scp) whose path contains this (a literal substring). */
  file?: string | undefined;
}

export type SessionStatus = 'live' | 'ended' | 'terminated' | 'interrupted';

/** Trigram search cannot match fewer characters than this (shorter text matches nothing). */
export const MIN_SEARCH_CHARS = 3;

/**
 * The auditors' search: text (substring of what a session printed) and every filter in one query,
 * newest first. Paging with limit/offset walks every match; `total` counts every match.
 */
export interface SessionQuery {
  /** At least MIN_SEARCH_CHARS characters, matched as a literal substring (never query syntax). */
  text?: string | undefined;
  user?: string | undefined;
  host?: string | undefined;
  /** started_at >= since (epoch ms). */
  since?: number | undefined;
  /** started_at < until (epoch ms). */
  until?: number | undefined;
  status?: SessionStatus | undefined;
  /** Only sessions that moved a file whose path contains this (a literal substring). */
  file?: string | undefined;
  limit: number;
  offset: number;
}

/** Where the text first appears in a session: the lowest matching channel, its earliest moment (s). */
export interface SessionHit {
  channel: number;
  t: number;
  /** The line of output holding the first match (at most HIT_LINE_CHARS around it). */
  line?: string;
  /** Where the match is in `line` ([start, end) in UTF-16 units), when it could be located. */
  match?: [number, number] | null;
}

/** A hit's line is cut to this many characters around the match. */
export const HIT_LINE_CHARS = 200;

/**
 * The line of `chunk` that holds `text` (matched case-insensitively, as the trigram index does), cut
 * to HIT_LINE_CHARS around it, and where the match sits in it.
 */
export function hitLine(chunk: string, text: string): { line: string; match: [number, number] | null } {
  const at = chunk.toLowerCase().indexOf(text.toLowerCase());
  // Lower-casing can change lengths outside ASCII; then the line is shown without a highlight.
  if (at < 0 || chunk.slice(at, at + text.length).toLowerCase() !== text.toLowerCase()) {
    const first = chunk.split('\n').find((l) => l.trim()) ?? '';
    return { line: first.slice(0, HIT_LINE_CHARS), match: null };
  }
  const lineStart = chunk.lastIndexOf('\n', at - 1) + 1;
  const nl = chunk.indexOf('\n', at + text.length);
  const lineEnd = nl < 0 ? chunk.length : nl;
  const room = Math.max(0, HIT_LINE_CHARS - text.length);
  const from = Math.max(lineStart, at - Math.floor(room / 2));
  const to = Math.min(lineEnd, Math.max(at + text.length, from + HIT_LINE_CHARS));
  return { line: chunk.slice(from, to), match: [at - from, Math.min(to, at + text.length) - from] };
}

export interface SessionQueryResult {
  items: { session: SessionRecord; hit: SessionHit | null }[];
  total: number;
  /** False when `total` is a lower bound ("more than total"); a backend that counts exactly says true. */
  exact: boolean;
}

/** End reasons that mean gatehouse ended the session (revocation, kill, limits). */
export const TERMINATED_PREFIXES = ['revoked', 'killed', 'idle', 'max_', 'grant', 'host'] as const;

export function sessionStatus(s: { endedAt: number | null; endReason: string | null }): SessionStatus {
  if (s.endedAt === null) return 'live';
  if (s.endReason === 'interrupted') return 'interrupted';
  if (s.endReason && TERMINATED_PREFIXES.some((p) => s.endReason!.startsWith(p))) return 'terminated';
  return 'ended';
}

/** A server process registered in the store (cluster/node.ts): its heartbeat says it is alive. */
export interface NodeRecord {
  name: string;
  pid: number;
  host: string;
  startedAt: number;
  heartbeatAt: number;
  /** Where it listens (ssh, web), for people reading `nodes list`. */
  addresses: string[];
  /** Set when it stopped cleanly. */
  stoppedAt: number | null;
  /** Set when a surviving node closed its sessions after its heartbeat stopped: who, and when. */
  reapedBy: string | null;
  reapedAt: number | null;
  /**
   * This generation of the name: random, new at every claim. Session rows carry the incarnation of
   * their node at open, so a reap closes only the sessions of the generation it reaped.
   */
  incarnation: string;
  /** Set when the reap's closing step went through (a reap without it is finished by a later sweep). */
  reapDoneAt: number | null;
}

/** Who made a change; written to the audit log and to grants' created_by. */
export interface ChangeMeta {
  actor: string;
}

/** What opens a session row (sessions.open, logins.openSession). `node` names the server running it (default: this machine's host name). */
export interface SessionOpen { id: string; user: string; keyFingerprint: string; sourceAddr: string; mode: string; node?: string }

export interface Store {
  readonly users: {
    add(name: string, roles: Role[], meta: ChangeMeta): Promise<UserRecord>;
    get(name: string): Promise<UserRecord | null>;
    list(): Promise<UserRecord[]>;
    setDisabled(name: string, disabled: boolean, reason: string, meta: ChangeMeta): Promise<void>;
    addRole(name: string, role: Role, meta: ChangeMeta): Promise<void>;
    removeRole(name: string, role: Role, meta: ChangeMeta): Promise<void>;
    setPassword(name: string, passwordHash: string, meta: ChangeMeta): Promise<void>;
    /** Only security keys (sk-…) may log in for this user, or any key again. */
    setRequireSecurityKey(name: string, required: boolean, meta: ChangeMeta): Promise<void>;
    remove(name: string, meta: ChangeMeta): Promise<void>;
    anyAdmin(): Promise<boolean>;
    /** The scrypt hash of the web password, or null (only the web login reads it). */
    passwordHash(name: string): Promise<string | null>;
  };
  readonly keys: {
    add(user: string, keys: NewKey[], meta: ChangeMeta): Promise<KeyRecord[]>;
    list(user: string): Promise<KeyRecord[]>;
    remove(user: string, fingerprint: string, meta: ChangeMeta): Promise<void>;
    byFingerprint(fingerprint: string): Promise<KeyRecord | null>;
    /**
     * Accept a security key's signature counter: true only when it is greater than the last one
     * accepted for that key (or the first), in one atomic step, so of two logins racing with the
     * same counter exactly one wins. A counter that does not grow means a cloned authenticator.
     */
    claimCounter(fingerprint: string, counter: number): Promise<boolean>;
  };
  readonly totp: {
    enroll(user: string, seal: (userId: number) => Buffer, imported: boolean, meta: ChangeMeta): Promise<void>;
    get(user: string): Promise<TotpRecord | null>;
    reset(user: string, meta: ChangeMeta): Promise<void>;
    /** Claim a time step for a user: true only for the first claim of a step newer than the last. */
    claimStep(userId: number, step: number): Promise<boolean>;
  };
  readonly groups: {
    add(name: string, meta: ChangeMeta): Promise<GroupRecord>;
    remove(name: string, meta: ChangeMeta): Promise<void>;
    list(): Promise<GroupRecord[]>;
    addMember(group: string, user: string, meta: ChangeMeta): Promise<void>;
    removeMember(group: string, user: string, meta: ChangeMeta): Promise<void>;
  };
  readonly hosts: {
    add(host: NewHost, meta: ChangeMeta): Promise<HostRecord>;
    get(name: string): Promise<HostRecord | null>;
    list(): Promise<HostRecord[]>;
    setEnabled(name: string, enabled: boolean, meta: ChangeMeta): Promise<void>;
    pinKey(name: string, hostKey: string, fingerprint: string, previous: string | null, meta: ChangeMeta): Promise<void>;
    /** How the bastion authenticates to the host from its next connection on (admin.host.auth). */
    setAuth(name: string, auth: TargetAuthMode, meta: ChangeMeta): Promise<void>;
    remove(name: string, meta: ChangeMeta): Promise<void>;
  };
  readonly grants: {
    add(grant: NewGrant, meta: ChangeMeta): Promise<GrantRecord>;
    get(id: number): Promise<GrantRecord | null>;
    list(): Promise<GrantRecord[]>;
    remove(id: number, meta: ChangeMeta): Promise<void>;
  };
  /** Just-in-time access requests; the transitions are auth/requests.ts `step`, applied atomically here. */
  readonly requests: {
    /**
     * A new pending request, unless the same user already has one pending for the same login and
     * target (then that one, `created: false`). More than `maxOpen` pending requests are refused.
     */
    create(r: NewAccessRequest, limits: { maxOpen: number }): Promise<{ created: boolean; request: AccessRequestRecord }>;
    get(id: number): Promise<AccessRequestRecord | null>;
    /** The request whose approval made this grant (the session page names it), or null. */
    byGrant(grantId: number): Promise<AccessRequestRecord | null>;
    /** Newest first. */
    list(filter: { state?: RequestState | undefined; user?: string | undefined; limit?: number | undefined }): Promise<AccessRequestRecord[]>;
    /**
     * Apply one transition in one transaction: the new state, its audit event, and the grant it
     * creates (approval, through the same path as `grant add`, source `request:ID`) or removes
     * (revoke). A pending request past its time is expired first. Refusals throw a GatehouseError.
     */
    decide(id: number, t: Transition, policy: RequestPolicy): Promise<AccessRequestRecord>;
    /** Expire every pending request past its time (audited); returns them. */
    expireDue(): Promise<AccessRequestRecord[]>;
  };
  readonly policy: {
    /** A number that changes whenever anything access depends on changes, in any process. */
    version(): Promise<number>;
  };
  readonly kills: {
    /** Ask the server to end a live session (the CLI is another process). */
    request(sessionId: string, reason: string, meta: ChangeMeta): Promise<void>;
    pending(): Promise<KillRequest[]>;
    done(id: number): Promise<void>;
  };
  readonly lockout: {
    /** Epoch ms until which the user is locked, or null. */
    lockedUntil(userId: number, now: number): Promise<number | null>;
    /** Count a failure; locks the user when `failures` happened within `windowMs`. Returns the lock end, if locked now. */
    recordFailure(userId: number, now: number, policy: { failures: number; windowMs: number; durationMs: number }): Promise<number | null>;
    clear(userId: number): Promise<void>;
    unlock(user: string, meta: ChangeMeta): Promise<void>;
  };
  readonly sessions: {
    /** `node` names the server running it (default: this machine's host name). */
    open(s: SessionOpen): Promise<void>;
    setTarget(id: string, host: string, login: string, grantId: number): Promise<void>;
    close(id: string, reason: string, bytesUp: number, bytesDown: number): Promise<SessionRecord | null>;
    /**
     * Close the sessions a previous run of this node left open (crash): returns their ids. Only
     * `node`'s sessions (default: this machine's host name) and those that name no node.
     */
    closeInterrupted(node?: string): Promise<string[]>;
    /** Live sessions of a user, across every process sharing the store. */
    countLive(user: string): Promise<number>;
    /** Bytes relayed by sessions that have ended (for /metrics). */
    bytesRelayed(): Promise<number>;
    openChannel(c: { sessionId: string; channel: number; kind: string; command: string | null; pty: boolean; host: string; login: string }): Promise<void>;
    closeChannel(c: { sessionId: string; channel: number; exitStatus: number | null; exitSignal: string | null } & StreamDigests): Promise<void>;
    list(filter: SessionFilter): Promise<SessionRecord[]>;
    count(filter: SessionFilter): Promise<number>;
    /** Search and filter in one query (the web page and `sessions search` both use it). */
    query(q: SessionQuery): Promise<SessionQueryResult>;
    get(id: string): Promise<SessionRecord | null>;
    channels(id: string): Promise<ChannelRecord[]>;
  };
  readonly recordings: {
    open(r: { sessionId: string; channel: number; path: string; kind: RecordingRecord['kind'] }): Promise<void>;
    /**
     * Close a recording: store its size and SHA-256 and append it to the recordings chain
     * (prev_hash → chain_hash, signed by `sign`) in one transaction.
     */
    close(r: { sessionId: string; channel: number; state: Exclude<RecordingState, 'open'>; truncated: boolean; size: number; sha256: string }, sign: (chainHash: string) => string): Promise<RecordingRecord>;
    /** Recordings still open (after a crash, those of interrupted sessions). */
    listOpen(): Promise<RecordingRecord[]>;
    /** Every recording, closed ones in chain order first. */
    list(sessionId?: string): Promise<RecordingRecord[]>;
    /** The chain's newest closed recording: its seq as count, its chain hash, and "SESSION-CHANNEL". */
    head(): Promise<ChainHead & { last: string | null }>;
    /** The closed recording at this chain position, or null. */
    bySeq(seq: number): Promise<RecordingRecord | null>;
  };
  readonly files: {
    add(f: Omit<FileRecord, 'at'>): Promise<void>;
    list(sessionId: string): Promise<FileRecord[]>;
  };
  readonly retention: {
    /** Put a session on legal hold (audited): retention never deletes its recordings. */
    hold(sessionId: string, reason: string, meta: ChangeMeta): Promise<void>;
    release(sessionId: string, meta: ChangeMeta): Promise<void>;
    holdOf(sessionId: string): Promise<{ reason: string; by: string; at: number } | null>;
    /** Every session on hold, oldest hold first. */
    held(): Promise<{ sessionId: string; user: string; reason: string; by: string; at: number }[]>;
    /** Closed, not yet deleted recordings of sessions that ended before `before` and are not held, in chain order. */
    expired(before: number, limit: number): Promise<RecordingRecord[]>;
    /** Recordings retention has marked deleted and not yet confirmed gone (the sweep removes any file still there). */
    deleted(): Promise<RecordingRecord[]>;
    /** The sweep removed a deleted recording's files: later sweeps skip it (no request per row per sweep). */
    purged(sessionId: string, channel: number): Promise<void>;
    /**
     * Mark a recording deleted and audit recording.deleted in one transaction; false (nothing done)
     * when its session is held, or it is already deleted.
     */
    markDeleted(sessionId: string, channel: number, meta: ChangeMeta): Promise<boolean>;
  };
  readonly search: {
    /** Index the text a recording printed, in chunks with their time (seconds) in the recording. */
    index(sessionId: string, channel: number, chunks: { t: number; text: string }[]): Promise<void>;
    /**
     * Replace what a channel has indexed so far (the steps indexed while it was live) with its exact
     * text, read from the closed recording, in one transaction: a search never sees neither.
     */
    reindex(sessionId: string, channel: number, chunks: { t: number; text: string }[]): Promise<void>;
    /**
     * Sessions whose output contains `text` (substring), with the first moment it appears: the newest
     * `limit` only. To list or count matches, use sessions.query, which has no cut.
     */
    find(text: string, limit: number): Promise<{ sessionId: string; channel: number; t: number }[]>;
  };
  readonly webauthn: {
    add(user: string, cred: NewWebauthnCredential, meta: ChangeMeta): Promise<WebauthnCredentialRecord>;
    list(user: string): Promise<WebauthnCredentialRecord[]>;
    byCredentialId(credentialId: string): Promise<WebauthnCredentialRecord | null>;
    remove(user: string, id: number, meta: ChangeMeta): Promise<void>;
    /**
     * Accept a signature counter for a credential, atomically: true when it is greater than the
     * last one accepted, or when both are 0 (an authenticator without a counter). Marks it used.
     */
    claimCounter(credentialId: string, counter: number, now: number): Promise<boolean>;
  };
  readonly webSessions: {
    get(sid: string, now: number): Promise<Record<string, unknown> | null>;
    set(sid: string, data: Record<string, unknown>, expiresAt: number): Promise<void>;
    destroy(sid: string): Promise<void>;
    /** Delete every web session expired at `now`; returns how many. */
    purgeExpired(now: number): Promise<number>;
  };
  readonly audit: {
    /** Append one event (for events that are not part of a store change, e.g. auth and sessions). */
    append(ev: import('../audit/events.js').AuditDraft): Promise<AuditRecord>;
    list(filter: AuditFilter): Promise<AuditRecord[]>;
    /** How many events of a type there are (for /metrics). */
    count(type: string): Promise<number>;
    /** Rows after an id, in order (for mirroring to the log and for verification). */
    after(id: number, limit: number): Promise<AuditRecord[]>;
    verify(): Promise<import('../audit/chain.js').ChainVerdict>;
    /** The newest row: ids run 1..count, so count is its id (0 and the genesis hash when empty). */
    head(): Promise<ChainHead>;
    /** The row with this id, or null. */
    get(id: number): Promise<AuditRecord | null>;
  };
  /** Server nodes and their heartbeats (several nodes or workers on one store). */
  readonly nodes: {
    /**
     * Register `name` for this process, or throw a GatehouseError naming the holder when another
     * process holds the name and its heartbeat is fresher than `staleMs`. A stale or stopped row is
     * taken over.
     */
    claim(n: { name: string; pid: number; host: string; addresses: string[] }, staleMs: number, provenDead?: string): Promise<NodeRecord>;
    /**
     * Refresh the heartbeat of this generation; false when the row is no longer this process's
     * (reaped, stopped, pruned, or claimed by another). PostgreSQL stamps the database's clock.
     */
    heartbeat(name: string, incarnation: string, addresses?: string[]): Promise<boolean>;
    /** Every node, by name. */
    list(): Promise<NodeRecord[]>;
    /** The clock heartbeats are stamped with: the database's on PostgreSQL, the injected clock on SQLite. */
    now(): Promise<number>;
    /** A clean stop: the row stays, marked stopped (worker rows are pruned later). */
    leave(name: string, incarnation: string): Promise<void>;
    /**
     * Take over a node whose heartbeat is older than `deadAfterMs` on the store's clock (and not
     * stopped, not yet reaped), in one atomic step: for exactly one caller, the incarnation reaped.
     */
    reap(name: string, deadAfterMs: number, by: string): Promise<string | null>;
    /** Ids of the open sessions of one generation of a node (those a reap of it closes). */
    orphans(name: string, incarnation: string): Promise<string[]>;
    /**
     * A reap's closing step, in one transaction: the generation's open sessions closed as
     * interrupted, the reap marked done, `node.reaped` audited. Null when another finished it.
     */
    finishReap(name: string, incarnation: string, by: string, recordings: number): Promise<string[] | null>;
    /** Drop the rows of workers (NAME/wK) that stopped or were reaped and have no open session left. */
    prune(): Promise<string[]>;
  };
  /**
   * Login state shared by every worker and node (auth/throttle.ts, auth/pending.ts, proxy/connection.ts): auth.mfaGrace, the seats at the
   * TOTP prompt (auth.maxPendingMfa) and the seat count of sessions.maxPerUser. Each check-and-take
   * is one atomic step across processes.
   */
  readonly logins: LoginsStore;
  /** Fleet scans (src/fleet): the latest scan of each host, replaced by the next. */
  readonly fleet: {
    put(r: import('../fleet/facts.js').FleetScanRecord): Promise<void>;
    get(host: string): Promise<import('../fleet/facts.js').FleetScanRecord | null>;
    /** Every stored scan, by host name (rows of removed hosts included: callers join with hosts.list()). */
    list(): Promise<import('../fleet/facts.js').FleetScanRecord[]>;
  };
  readonly meta: {
    get(key: string): Promise<string | null>;
    set(key: string, value: string): Promise<void>;
  };
  /**
   * Run many store calls as one transaction (bulk loads: the bench's data sets, migrations between
   * stores). Only while nothing else uses this store object: every call made meanwhile joins it.
   */
  batch<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * A push on every policy-version bump and kill request, from any node or CLI (PostgreSQL:
   * LISTEN/NOTIFY). Absent for SQLite, where polling is the only way. Returns an unsubscribe.
   */
  readonly changes?: { subscribe(fn: () => void): () => void };
  close(): Promise<void>;
}

/** Store['logins']: see there. */
export interface LoginsStore {
  /**
   * auth.mfaGrace: key-only logins of this user, key and source address are trusted until
   * `expiresAt`, while the TOTP enrolment stays `enrolment`. Nothing is stored when the user is
   * disabled, the key is not theirs any more or the enrolment changed. The trust ends, whichever
   * process makes the change, when the user is disabled or removed, the key removed, or the TOTP
   * reset or enrolled again.
   */
  trust(g: GraceKey & { enrolment: number; expiresAt: number }): Promise<void>;
  /** A trust above, not expired at `now`, for this enrolment (and the user, key and enrolment still as they were). */
  trusted(g: GraceKey & { enrolment: number }, now: number): Promise<boolean>;
  /** End every trust of a user, or of one key of theirs. */
  forget(user: string, fingerprint?: string): Promise<void>;
  /**
   * Take a seat at the TOTP prompt for `seat` (one connection): false when the user already has
   * `limit` other seats younger than `maxAgeMs`. Taking a seat already held is true.
   */
  enterPending(user: string, seat: string, now: number, limit: number, maxAgeMs: number): Promise<boolean>;
  leavePending(seat: string): Promise<void>;
  /** Seats of a user younger than `maxAgeMs`. */
  countPending(user: string, now: number, maxAgeMs: number): Promise<number>;
  /**
   * sessions.maxPerUser: open the session row (as sessions.open) only while the user has fewer than
   * `limit` live sessions, in one step, so that two connections racing for the last seat on two
   * processes get one seat. Sessions of a node that stopped, was reaped or whose heartbeat is older
   * than `deadAfterMs` do not count.
   */
  openSession(s: SessionOpen, seat: { limit: number; deadAfterMs: number })
    : Promise<{ opened: true } | { opened: false; live: number }>;
  /** The count openSession compares with its limit. */
  countLive(user: string, deadAfterMs: number): Promise<number>;
}

export interface GraceKey {
  user: string;
  fingerprint: string;
  address: string;
}
