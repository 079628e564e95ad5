import { createHash } from 'node:crypto';
import type { ChainHead, Store } from '../store/types.js';

/**
 * A checkpoint commits to how long both hash chains were at one moment (the audit log and the
 * recordings) and to the hash each ended with, signed with the bastion's host key. A chain's links
 * show a row changed or removed in the middle; only a record kept elsewhere shows rows removed
 * from the END. So checkpoints are written to the witness (witness.ts), outside the database.
 *
 * The signature covers a digest with its own prefix, so the signature of a recording row (over
 * its chain hash) can never pass as the signature of a checkpoint.
 */
export interface Checkpoint {
  v: 1;
  /** ISO time it was taken. */
  at: string;
  audit: ChainHead;
  /** `last` names the newest recording ("SESSION-CHANNEL"), so a report can say which is missing. */
  recordings: ChainHead & { last: string | null };
  /** base64 signature by the host key over checkpointDigest(). */
  sig: string;
}

export type Sign = (hexDigest: string) => string;
export type Verifier = (data: Buffer, signature: Buffer) => boolean;

const DOMAIN = 'gatehouse checkpoint v1';

export function checkpointDigest(c: Omit<Checkpoint, 'sig'>): string {
  const canonical = JSON.stringify([c.v, c.at, c.audit.count, c.audit.hash, c.recordings.count, c.recordings.hash, c.recordings.last]);
  return createHash('sha256').update(DOMAIN).update('\n').update(canonical).digest('hex');
}

/** Both chains' heads now. The audit head is read last: a recording close appends its audit row after the chain row. */
export async function currentHeads(store: Store): Promise<Pick<Checkpoint, 'audit' | 'recordings'>> {
  const recordings = await store.recordings.head();
  const audit = await store.audit.head();
  return { audit, recordings };
}

export function sameHeads(a: Pick<Checkpoint, 'audit' | 'recordings'>, b: Pick<Checkpoint, 'audit' | 'recordings'>): boolean {
  return a.audit.count === b.audit.count && a.audit.hash === b.audit.hash
    && a.recordings.count === b.recordings.count && a.recordings.hash === b.recordings.hash;
}

export function makeCheckpoint(heads: Pick<Checkpoint, 'audit' | 'recordings'>, at: number, sign: Sign): Checkpoint {
  const body = { v: 1 as const, at: new Date(at).toISOString(), audit: { ...heads.audit }, recordings: { ...heads.recordings } };
  return { ...body, sig: sign(checkpointDigest(body)) };
}

export function signatureOk(c: Checkpoint, verify: Verifier): boolean {
  try {
    return verify(Buffer.from(checkpointDigest(c), 'hex'), Buffer.from(c.sig, 'base64'));
  } catch {
    return false;
  }
}

const isHash = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Read one witness line; null when it is not a checkpoint at all (the caller names the line). */
export function parseCheckpoint(text: string): Checkpoint | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const c = v as Record<string, unknown>;
  const a = c.audit as Record<string, unknown> | undefined;
  const r = c.recordings as Record<string, unknown> | undefined;
  if (c.v !== 1 || typeof c.at !== 'string' || typeof c.sig !== 'string' || !a || !r) return null;
  if (!isCount(a.count) || !isHash(a.hash) || !isCount(r.count) || !isHash(r.hash)) return null;
  if (r.last !== null && typeof r.last !== 'string') return null;
  return {
    v: 1, at: c.at, sig: c.sig,
    audit: { count: a.count, hash: a.hash },
    recordings: { count: r.count, hash: r.hash, last: r.last },
  };
}
