/**
 * Triggers that bump meta.policy_version on every committed change of a table (migration 4). The
 * SQL it produces is part of a shipped migration: it must not change.
 */
function bumpPolicyVersion(table: string, changes: readonly ('INSERT' | 'UPDATE' | 'DELETE')[] = ['INSERT', 'UPDATE', 'DELETE']): string {
  return changes.map((c) => `  CREATE TRIGGER policy_version_${table}_${c.toLowerCase()} AFTER ${c} ON ${table}
    BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'policy_version'; END;
`).join('');
}

/**
 * Numbered migrations, applied in order and recorded in PRAGMA user_version. Append only: never edit
 * an entry that has shipped; add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the foundation schema
  `
  CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    disabled_reason TEXT,
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role    TEXT NOT NULL CHECK (role IN ('operator', 'auditor', 'admin')),
    PRIMARY KEY (user_id, role)
  ) STRICT;

  -- A key belongs to exactly one user: the fingerprint is unique across users.
  CREATE TABLE ssh_keys (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    bits        INTEGER NOT NULL,
    public_key  TEXT NOT NULL,
    comment     TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX ssh_keys_user ON ssh_keys(user_id);

  -- secret is sealed with the master key (AES-256-GCM); last_step makes each TOTP step single-use.
  CREATE TABLE totp (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret     BLOB NOT NULL,
    last_step  INTEGER,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE user_groups (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
  ) STRICT;
  CREATE INDEX group_members_user ON group_members(user_id);

  CREATE TABLE hosts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    address     TEXT NOT NULL,
    port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    host_key    TEXT,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE host_group_members (
    host_id    INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    host_group TEXT NOT NULL,
    PRIMARY KEY (host_id, host_group)
  ) STRICT;
  CREATE INDEX host_group_members_group ON host_group_members(host_group);

  -- Exactly one "who" (user or group) and exactly one "where" (host, host group or all hosts).
  CREATE TABLE grants (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER REFERENCES users(id) ON DELETE CASCADE,
    group_id   INTEGER REFERENCES user_groups(id) ON DELETE CASCADE,
    host_id    INTEGER REFERENCES hosts(id) ON DELETE CASCADE,
    host_group TEXT,
    all_hosts  INTEGER NOT NULL DEFAULT 0 CHECK (all_hosts IN (0, 1)),
    logins     TEXT NOT NULL,
    rights     TEXT NOT NULL,
    until      INTEGER,
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    CHECK ((host_id IS NOT NULL) + (host_group IS NOT NULL) + all_hosts = 1)
  ) STRICT;
  CREATE INDEX grants_user ON grants(user_id);
  CREATE INDEX grants_group ON grants(group_id);

  -- Sessions and channels keep names as text, not foreign keys: removing a user or a host must never
  -- remove the history of what they did.
  CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    key_fingerprint TEXT,
    source_addr TEXT NOT NULL,
    host_name   TEXT,
    login       TEXT,
    mode        TEXT NOT NULL,
    grant_id    INTEGER,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    end_reason  TEXT,
    bytes_up    INTEGER NOT NULL DEFAULT 0,
    bytes_down  INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE INDEX sessions_started ON sessions(started_at);
  CREATE INDEX sessions_live ON sessions(ended_at) WHERE ended_at IS NULL;

  CREATE TABLE channels (
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    channel     INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    command     TEXT,
    pty         INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    exit_status INTEGER,
    exit_signal TEXT,
    stdin_bytes  INTEGER NOT NULL DEFAULT 0,
    stdout_bytes INTEGER NOT NULL DEFAULT 0,
    stderr_bytes INTEGER NOT NULL DEFAULT 0,
    stdin_sha256  TEXT,
    stdout_sha256 TEXT,
    stderr_sha256 TEXT,
    PRIMARY KEY (session_id, channel)
  ) STRICT;

  CREATE TABLE recordings (
    session_id TEXT NOT NULL,
    channel    INTEGER NOT NULL,
    path       TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('open', 'closed', 'interrupted', 'failed')),
    truncated  INTEGER NOT NULL DEFAULT 0,
    size       INTEGER,
    sha256     TEXT,
    prev_hash  TEXT,
    chain_hash TEXT,
    signature  TEXT,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    PRIMARY KEY (session_id, channel),
    FOREIGN KEY (session_id, channel) REFERENCES channels(session_id, channel)
  ) STRICT;

  -- Append-only, hash-chained: hash = sha256(prev_hash || canonical row). The triggers make an
  -- accidental UPDATE or DELETE fail; deliberate tampering with the file is caught by verify.
  CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    type      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
  ) STRICT;
  CREATE INDEX audit_log_ts ON audit_log(ts);
  CREATE INDEX audit_log_type ON audit_log(type);
  CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
  CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

  -- Small key/value state owned by the server (e.g. how far the audit log was mirrored to stdout).
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT;
  `,
  // 2: the operator's path: lockout counters that survive a restart; per-channel targets
  `
  CREATE TABLE auth_failures (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ts      INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX auth_failures_user ON auth_failures(user_id, ts);

  CREATE TABLE user_locks (
    user_id      INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    locked_until INTEGER NOT NULL
  ) STRICT;

  ALTER TABLE channels ADD COLUMN host_name TEXT;
  ALTER TABLE channels ADD COLUMN login TEXT;
  `,
  // 3: recordings chained in the order they close
  `
  ALTER TABLE recordings ADD COLUMN seq INTEGER;
  CREATE UNIQUE INDEX recordings_seq ON recordings(seq);
  ALTER TABLE recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'terminal';
  `,
  // 4: revocation. Every change to who may reach what bumps meta.policy_version, whichever
  // process commits it; the server polls that one value and re-authorizes live sessions.
  // session_kills carries "end this session" requests from the CLI to the server.
  `
  CREATE TABLE session_kills (
    id         INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    done_at    INTEGER
  ) STRICT;
  INSERT OR IGNORE INTO meta (key, value) VALUES ('policy_version', '0');
${['users', 'user_roles', 'ssh_keys', 'user_groups', 'group_members', 'hosts', 'host_group_members', 'grants'].map((t) => bumpPolicyVersion(t)).join('')}\
${bumpPolicyVersion('session_kills', ['INSERT'])}\
${bumpPolicyVersion('totp', ['INSERT', 'DELETE'])}\
  -- Claiming a TOTP step (every login) updates last_step only: not a policy change.
  CREATE TRIGGER policy_version_totp_secret AFTER UPDATE OF secret ON totp
    BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'policy_version'; END;
  `,
  // 5: the web UI: full-text search over what sessions printed; server-side web sessions
  `
  CREATE VIRTUAL TABLE session_text USING fts5(session_id UNINDEXED, channel UNINDEXED, t UNINDEXED, chunk, tokenize = 'trigram');
  CREATE TABLE web_sessions (
    sid        TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  ) STRICT;
  `,
  // 6: the session page lists a session's audit events by an index, not a scan
  `
  CREATE INDEX audit_log_session ON audit_log(json_extract(data, '$.session'));
  `,
  // 7: the node (server) that runs a session: start-up recovery closes only its own node's sessions.
  // Rows from before this have no node and are closed by whichever node starts.
  `
  ALTER TABLE sessions ADD COLUMN node TEXT;
  CREATE INDEX sessions_live_node ON sessions(node) WHERE ended_at IS NULL;
  `,
  // 8: the auditors' search. Every filter of the sessions list has an index that also gives the
  // newest-first order, and the status is a stored column (written where a session ends, by
  // sessionStatus()) instead of end-reason matching per row. The backfill spells out the end-reason
  // rules of this release (TERMINATED_PREFIXES) so that this SQL never changes with the code.
  `
  ALTER TABLE sessions ADD COLUMN status TEXT NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'ended', 'terminated', 'interrupted'));
  UPDATE sessions SET status = CASE
    WHEN ended_at IS NULL THEN 'live'
    WHEN end_reason = 'interrupted' THEN 'interrupted'
    WHEN instr(end_reason, 'revoked') = 1 OR instr(end_reason, 'killed') = 1 OR instr(end_reason, 'idle') = 1
      OR instr(end_reason, 'max_') = 1 OR instr(end_reason, 'grant') = 1 OR instr(end_reason, 'host') = 1 THEN 'terminated'
    ELSE 'ended' END;
  CREATE INDEX sessions_user_started ON sessions(user_name, started_at);
  CREATE INDEX sessions_host_started ON sessions(host_name, started_at);
  CREATE INDEX sessions_status_started ON sessions(status, started_at);

  -- A search learns which sessions match from the rowids alone, without reading stored text:
  -- session_text rowids are (sessions.text_key << 24) + n, n = 1..text_chunks. text_key is a stable
  -- number of its own (a rowid may change on VACUUM). Chunks of no session share key 0.
  ALTER TABLE sessions ADD COLUMN text_key INTEGER;
  ALTER TABLE sessions ADD COLUMN text_chunks INTEGER NOT NULL DEFAULT 0;
  UPDATE sessions SET text_key = rowid;
  CREATE UNIQUE INDEX sessions_text_key ON sessions(text_key);
  UPDATE sessions SET text_chunks = x.n FROM (SELECT session_id, count(*) AS n FROM session_text GROUP BY session_id) AS x
    WHERE x.session_id = sessions.id;
  CREATE VIRTUAL TABLE session_text_keyed USING fts5(session_id UNINDEXED, channel UNINDEXED, t UNINDEXED, chunk, tokenize = 'trigram');
  INSERT INTO session_text_keyed (rowid, session_id, channel, t, chunk)
    SELECT (coalesce(s.text_key, 0) << 24) + row_number() OVER (PARTITION BY coalesce(s.text_key, 0) ORDER BY x.rowid),
      x.session_id, x.channel, x.t, x.chunk
    FROM session_text AS x LEFT JOIN sessions AS s ON s.id = x.session_id;
  DROP TABLE session_text;
  ALTER TABLE session_text_keyed RENAME TO session_text;
  `,
  // security keys (FIDO2 sk- keys): each key's last signature counter and whether it must carry
  // user verification; users who may log in with security keys only. Accepting a counter (every
  // sk login) is not a policy change, so the ssh_keys update trigger now watches the other columns.
  `
  ALTER TABLE ssh_keys ADD COLUMN sk_counter INTEGER;
  ALTER TABLE ssh_keys ADD COLUMN verify_required INTEGER NOT NULL DEFAULT 0 CHECK (verify_required IN (0, 1));
  ALTER TABLE users ADD COLUMN require_security_key INTEGER NOT NULL DEFAULT 0 CHECK (require_security_key IN (0, 1));
  DROP TRIGGER policy_version_ssh_keys_update;
  CREATE TRIGGER policy_version_ssh_keys_update AFTER UPDATE OF user_id, fingerprint, type, bits, public_key, comment, verify_required ON ssh_keys
    BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'policy_version'; END;
  `,
  // How the bastion authenticates to a host: its static client key (every existing host) or a
  // short-lived certificate from the user CA.
  `
  ALTER TABLE hosts ADD COLUMN auth TEXT NOT NULL DEFAULT 'key' CHECK (auth IN ('key', 'cert'));
  `,
  // files moved by transfers (proxy/sftp): one row per file an SFTP or scp channel read or wrote,
  // for the session page, `sessions show` and `sessions list --file`
  `
  CREATE TABLE transferred_files (
    id         INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    channel    INTEGER NOT NULL,
    protocol   TEXT NOT NULL,
    direction  TEXT NOT NULL,
    path       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    at         INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX transferred_files_session ON transferred_files(session_id, id);
  `,
  // Retention and legal hold. A held session's recordings are never deleted by retention; a
  // deleted recording keeps its row (and its place and hash in the signed chain) with deleted_at set,
  // and its recording.deleted audit event is the tombstone verify checks.
  `
  ALTER TABLE sessions ADD COLUMN hold_reason TEXT;
  ALTER TABLE sessions ADD COLUMN held_by TEXT;
  ALTER TABLE sessions ADD COLUMN held_at INTEGER;
  ALTER TABLE recordings ADD COLUMN deleted_at INTEGER;
  CREATE INDEX sessions_ended ON sessions(ended_at) WHERE ended_at IS NOT NULL;
  `,
  // Just-in-time access requests (auth/requests.ts). A grant made by an approval names its request
  // in grants.source. The approver role needs user_roles' CHECK widened: SQLite cannot alter a
  // CHECK, so the table is rebuilt (its policy triggers go with it and are made again, unchanged).
  `
  CREATE TABLE user_roles_v2 (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role    TEXT NOT NULL CHECK (role IN ('operator', 'auditor', 'admin', 'approver')),
    PRIMARY KEY (user_id, role)
  ) STRICT;
  INSERT INTO user_roles_v2 (user_id, role) SELECT user_id, role FROM user_roles;
  DROP TABLE user_roles;
  ALTER TABLE user_roles_v2 RENAME TO user_roles;
${bumpPolicyVersion('user_roles')}\
  ALTER TABLE grants ADD COLUMN source TEXT;
  CREATE TABLE access_requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name       TEXT NOT NULL,
    login           TEXT NOT NULL,
    target_kind     TEXT NOT NULL CHECK (target_kind IN ('host', 'host-group')),
    target_name     TEXT NOT NULL,
    reason          TEXT NOT NULL,
    duration_ms     INTEGER NOT NULL CHECK (duration_ms > 0),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'cancelled', 'revoked')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    approvals       TEXT NOT NULL DEFAULT '[]',
    decided_at      INTEGER,
    decided_by      TEXT,
    decision_reason TEXT,
    grant_id        INTEGER,
    grant_until     INTEGER
  ) STRICT;
  -- One pending request per user and target: the same request sent twice is the same request.
  CREATE UNIQUE INDEX access_requests_one_pending ON access_requests(user_name, login, target_kind, target_name) WHERE state = 'pending';
  CREATE INDEX access_requests_state ON access_requests(state, id);
  `,
  // WebAuthn credentials for the web login (web/webauthn.ts): the credential id as the browser
  // gives it (base64url), the COSE public key, and the last signature counter accepted.
  `
  CREATE TABLE webauthn_credentials (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    public_key    BLOB NOT NULL,
    counter       INTEGER NOT NULL DEFAULT 0,
    transports    TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
  ) STRICT;
  CREATE INDEX webauthn_credentials_user ON webauthn_credentials(user_id);
  `,
  // Server nodes (several nodes or workers on one store, cluster/node.ts): a name per process and its
  // heartbeat; a surviving node reaps (closes the sessions of) one whose heartbeat stopped.
  `
  CREATE TABLE nodes (
    name         TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    addresses    TEXT NOT NULL DEFAULT '[]',
    stopped_at   INTEGER,
    reaped_by    TEXT,
    reaped_at    INTEGER
  ) STRICT;
  `,
  // Fleet scans (src/fleet): each host's latest scan, its facts as JSON (fleet/facts.ts).
  `
  CREATE TABLE fleet_scans (
    host_name   TEXT PRIMARY KEY,
    scanned_at  INTEGER NOT NULL,
    reachable   INTEGER NOT NULL CHECK (reachable IN (0, 1)),
    error       TEXT,
    session_id  TEXT,
    duration_ms INTEGER NOT NULL,
    facts       TEXT
  ) STRICT;
  `,
  // Login state shared by every worker and node (store/sqlite/logins.ts): auth.mfaGrace trusts and
  // the seats at the TOTP prompt (auth.maxPendingMfa). A trust ends with its user, key or TOTP
  // enrolment, whichever process changes them (the triggers and foreign keys), not only in the
  // process that noticed. The partial index counts a user's live sessions (sessions.maxPerUser).
  `
  CREATE TABLE mfa_grace (
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL REFERENCES ssh_keys(fingerprint) ON DELETE CASCADE,
    address     TEXT NOT NULL,
    enrolment   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, fingerprint, address)
  ) STRICT;
  CREATE INDEX mfa_grace_fingerprint ON mfa_grace(fingerprint);
  CREATE TRIGGER mfa_grace_user_disabled AFTER UPDATE OF disabled ON users WHEN NEW.disabled = 1
    BEGIN DELETE FROM mfa_grace WHERE user_id = NEW.id; END;
  CREATE TRIGGER mfa_grace_totp_delete AFTER DELETE ON totp
    BEGIN DELETE FROM mfa_grace WHERE user_id = OLD.user_id; END;
  CREATE TRIGGER mfa_grace_totp_update AFTER UPDATE OF secret, created_at ON totp
    BEGIN DELETE FROM mfa_grace WHERE user_id = OLD.user_id; END;
  CREATE TRIGGER mfa_grace_key_update AFTER UPDATE OF user_id, fingerprint ON ssh_keys
    BEGIN DELETE FROM mfa_grace WHERE fingerprint = OLD.fingerprint; END;
  CREATE TABLE mfa_pending (
    seat      TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    since     INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX mfa_pending_user ON mfa_pending(user_name, since);
  CREATE INDEX sessions_live_user ON sessions(user_name) WHERE ended_at IS NULL;
  `,
  // Retention: when the sweep confirmed a deleted recording's files gone, so later sweeps skip it
  // (with S3 each check is a request per row, every sweep, for ever).
  `
  ALTER TABLE recordings ADD COLUMN purged_at INTEGER;
  `,
  // Node generations (cluster/reap.ts): each claim of a node name gets a random incarnation, and a
  // session row carries the incarnation of its node at open (stamped here, so no caller can forget),
  // so a reaper closes only the sessions of the generation it reaped, never those of the same name
  // claimed again by a node that came back. reap_done_at: the reap's closing step went through; a
  // reap left without it (the reaper crashed) is finished by the next sweep.
  `
  ALTER TABLE nodes ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
  ALTER TABLE nodes ADD COLUMN reap_done_at INTEGER;
  UPDATE nodes SET reap_done_at = reaped_at WHERE reaped_at IS NOT NULL;
  ALTER TABLE sessions ADD COLUMN node_incarnation TEXT;
  CREATE TRIGGER sessions_node_incarnation AFTER INSERT ON sessions WHEN NEW.node IS NOT NULL AND NEW.node_incarnation IS NULL
  BEGIN
    UPDATE sessions SET node_incarnation = (SELECT incarnation FROM nodes WHERE name = NEW.node) WHERE id = NEW.id;
  END;
  `,
];
