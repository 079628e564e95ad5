import type { AccessRequestRecord, Approval, RequestState } from '../auth/requests.js';
import type { ChainRow } from '../audit/chain.js';
import type { AuditRecord, GrantWhere, GrantWho, Right } from '../audit/events.js';
import type { FileRecord, GrantRecord, SessionRecord, WebauthnCredentialRecord } from './types.js';

/**
 * Row-to-record mappers that are the same on both backends (the PostgreSQL driver returns bigint
 * columns as numbers, postgres/db.ts). Rows with boolean columns are not here: SQLite reads them as
 * 0/1, PostgreSQL as booleans, and each backend keeps its own mapper for those.
 */

/** The columns of a session row both backends read (each adds its own: text_key, total). */
export interface SessionRow {
  id: string; user_name: string; key_fingerprint: string | null; source_addr: string; host_name: string | null; login: string | null;
  mode: string; grant_id: number | null; started_at: number; ended_at: number | null; end_reason: string | null;
  bytes_up: number; bytes_down: number; node: string | null;
}

export const toSessionRecord = (r: SessionRow): SessionRecord => ({
  id: r.id, user: r.user_name, keyFingerprint: r.key_fingerprint, sourceAddr: r.source_addr, host: r.host_name,
  login: r.login, mode: r.mode, grantId: r.grant_id, startedAt: r.started_at, endedAt: r.ended_at,
  endReason: r.end_reason, bytesUp: r.bytes_up, bytesDown: r.bytes_down, node: r.node,
});

export const toAuditRecord = (r: ChainRow): AuditRecord => ({
  id: r.id, ts: r.ts, type: r.type, actor: r.actor, subject: r.subject,
  data: JSON.parse(r.data) as Record<string, unknown>, prevHash: r.prev_hash, hash: r.hash,
});

export interface FileRow {
  id: number; session_id: string; channel: number; protocol: string; direction: string; path: string; size: number; sha256: string; at: number;
}

export const toFileRecord = (r: FileRow): FileRecord => ({
  sessionId: r.session_id, channel: r.channel, protocol: r.protocol, direction: r.direction, path: r.path, size: r.size, sha256: r.sha256, at: r.at,
});

export interface WebauthnRow {
  id: number; user_id: number; name: string; credential_id: string; public_key: Buffer; counter: number;
  transports: string; created_at: number; last_used_at: number | null;
}

export function toWebauthnRecord(r: WebauthnRow): WebauthnCredentialRecord {
  let transports: string[] = [];
  try {
    const t = JSON.parse(r.transports) as unknown;
    if (Array.isArray(t)) transports = t.filter((x): x is string => typeof x === 'string');
  } catch { /* a bad column reads as no hints */ }
  return {
    id: r.id, userId: r.user_id, user: r.name, credentialId: r.credential_id, publicKey: r.public_key, counter: r.counter,
    transports, createdAt: r.created_at, lastUsedAt: r.last_used_at,
  };
}

export interface RequestRow {
  id: number; user_name: string; login: string; target_kind: 'host' | 'host-group'; target_name: string; reason: string;
  duration_ms: number; state: RequestState; created_at: number; expires_at: number; approvals: string;
  decided_at: number | null; decided_by: string | null; decision_reason: string | null; grant_id: number | null; grant_until: number | null;
}

export function toRequestRecord(r: RequestRow): AccessRequestRecord {
  return {
    id: r.id, user: r.user_name, login: r.login, target: { kind: r.target_kind, name: r.target_name }, reason: r.reason,
    durationMs: r.duration_ms, state: r.state, createdAt: r.created_at, expiresAt: r.expires_at,
    approvals: JSON.parse(r.approvals) as Approval[], decidedAt: r.decided_at, decidedBy: r.decided_by,
    decisionReason: r.decision_reason, grantId: r.grant_id, grantUntil: r.grant_until,
  };
}

/** The columns of a grant row the mapper reads (all_hosts, a boolean column, stays with each backend). */
export interface GrantRow {
  id: number; user_name: string | null; group_name: string | null; host_name: string | null; host_group: string | null;
  logins: string; rights: string; until: number | null; reason: string; created_by: string; created_at: number; source: string | null;
}

export function toGrantRecord(r: GrantRow): GrantRecord {
  const who: GrantWho = r.user_name !== null ? { kind: 'user', name: r.user_name } : { kind: 'group', name: r.group_name! };
  const where: GrantWhere =
    r.host_name !== null ? { kind: 'host', name: r.host_name } : r.host_group !== null ? { kind: 'host-group', name: r.host_group } : { kind: 'all' };
  return {
    id: r.id, who, where, logins: JSON.parse(r.logins) as string[], rights: JSON.parse(r.rights) as Right[],
    until: r.until, reason: r.reason, createdBy: r.created_by, createdAt: r.created_at,
    ...(r.source !== null ? { source: r.source } : {}),
  };
}
