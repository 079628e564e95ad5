import { createHash } from 'node:crypto';

/**
 * The audit log is a hash chain: each row stores the previous row's hash, and its own hash covers
 * the previous hash and every stored column. Changing, removing or reordering any row breaks every
 * hash after it.
 */
export const GENESIS_HASH = '0'.repeat(64);

export interface ChainRow {
  id: number;
  ts: number;
  type: string;
  actor: string;
  subject: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

export function rowHash(prevHash: string, row: Omit<ChainRow, 'prev_hash' | 'hash'>): string {
  const canonical = JSON.stringify([row.id, row.ts, row.type, row.actor, row.subject, row.data]);
  return createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex');
}

export type ChainVerdict =
  | { ok: true; rows: number; head: string }
  | { ok: false; rows: number; badId: number; problem: string };

/** Walk rows in id order and report the first one that does not fit the chain. */
export function verifyChain(rows: Iterable<ChainRow>): ChainVerdict {
  let prev = GENESIS_HASH;
  let lastId = 0;
  let n = 0;
  for (const r of rows) {
    n++;
    if (r.id <= lastId) return { ok: false, rows: n, badId: r.id, problem: 'rows out of order' };
    if (r.prev_hash !== prev) {
      return { ok: false, rows: n, badId: r.id, problem: 'previous-hash link broken (a row before it was changed or removed)' };
    }
    if (rowHash(prev, r) !== r.hash) return { ok: false, rows: n, badId: r.id, problem: 'row content does not match its hash (the row was changed)' };
    prev = r.hash;
    lastId = r.id;
  }
  return { ok: true, rows: n, head: prev };
}
