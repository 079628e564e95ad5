import { RECORDINGS_GENESIS, recordingChainHash } from '../../recorder/chain.js';
import type { RecordingRecord, Store } from '../types.js';
import type { Ctx } from './db.js';

interface Row {
  session_id: string; channel: number; path: string; kind: string; state: string; truncated: number; size: number | null;
  sha256: string | null; seq: number | null; prev_hash: string | null; chain_hash: string | null; signature: string | null;
  started_at: number; ended_at: number | null; deleted_at?: number | null;
}

const toRecord = (r: Row): RecordingRecord => ({
  sessionId: r.session_id, channel: r.channel, path: r.path, kind: r.kind as RecordingRecord['kind'], state: r.state as RecordingRecord['state'],
  truncated: r.truncated === 1, size: r.size, sha256: r.sha256, seq: r.seq, prevHash: r.prev_hash, chainHash: r.chain_hash,
  signature: r.signature, startedAt: r.started_at, endedAt: r.ended_at, deletedAt: r.deleted_at ?? null,
});

export function recordingsTable(ctx: Ctx): Store['recordings'] {
  const { db, clock } = ctx;
  const one = db.prepare<[string, number], Row>('SELECT * FROM recordings WHERE session_id = ? AND channel = ?');
  return {
    async open(r) {
      db.prepare("INSERT INTO recordings (session_id, channel, path, kind, state, started_at) VALUES (?, ?, ?, ?, 'open', ?)")
        .run(r.sessionId, r.channel, r.path, r.kind, clock.now());
    },
    async close(r, sign) {
      return db.transaction(() => {
        const last = db.prepare<[], { seq: number; chain_hash: string }>('SELECT seq, chain_hash FROM recordings WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1').get();
        const row = one.get(r.sessionId, r.channel);
        if (!row) throw new Error(`no recording ${r.sessionId}/${r.channel}`);
        // Closed already (a reaper and the node's own restart, or two reapers, recovering the same
        // file): the first close stands and the chain is not extended twice for one recording.
        if (row.state !== 'open') return toRecord(row);
        const seq = (last?.seq ?? 0) + 1;
        const prev = last?.chain_hash ?? RECORDINGS_GENESIS;
        const chain = recordingChainHash(prev, { seq, sessionId: r.sessionId, channel: r.channel, path: row.path, state: r.state, size: r.size, sha256: r.sha256 });
        const signature = sign(chain);
        // No head is kept next to the chain: a removed last row is noticed through the signed
        // checkpoints in the witness (audit/witness.ts), which live outside this database.
        db.prepare(`UPDATE recordings SET state = ?, truncated = ?, size = ?, sha256 = ?, seq = ?, prev_hash = ?, chain_hash = ?, signature = ?, ended_at = ?
          WHERE session_id = ? AND channel = ? AND state = 'open'`)
          .run(r.state, r.truncated ? 1 : 0, r.size, r.sha256, seq, prev, chain, signature, clock.now(), r.sessionId, r.channel);
        return toRecord(one.get(r.sessionId, r.channel)!);
      }).immediate();
    },
    async listOpen() {
      return db.prepare<[], Row>("SELECT * FROM recordings WHERE state = 'open' ORDER BY started_at").all().map(toRecord);
    },
    async head() {
      const last = db.prepare<[], Row>('SELECT * FROM recordings WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1').get();
      return last ? { count: last.seq!, hash: last.chain_hash ?? '', last: `${last.session_id}-${last.channel}` } : { count: 0, hash: RECORDINGS_GENESIS, last: null };
    },
    async bySeq(seq) {
      const row = db.prepare<[number], Row>('SELECT * FROM recordings WHERE seq = ?').get(seq);
      return row ? toRecord(row) : null;
    },
    async list(sessionId) {
      const sql = `SELECT * FROM recordings ${sessionId === undefined ? '' : 'WHERE session_id = ?'} ORDER BY seq IS NULL, seq, started_at`;
      return (sessionId === undefined ? db.prepare<[], Row>(sql).all() : db.prepare<[string], Row>(sql).all(sessionId)).map(toRecord);
    },
  };
}
