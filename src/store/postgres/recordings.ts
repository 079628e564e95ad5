import { RECORDINGS_GENESIS, recordingChainHash } from '../../recorder/chain.js';
import type { RecordingRecord, Store } from '../types.js';
import { LOCK, type Ctx } from './db.js';

export interface RecordingRow {
  session_id: string; channel: number; path: string; kind: string; state: string; truncated: boolean; size: number | null;
  sha256: string | null; seq: number | null; prev_hash: string | null; chain_hash: string | null; signature: string | null;
  started_at: number; ended_at: number | null; deleted_at: number | null;
}

export const toRecording = (r: RecordingRow): RecordingRecord => ({
  sessionId: r.session_id, channel: r.channel, path: r.path, kind: r.kind as RecordingRecord['kind'], state: r.state as RecordingRecord['state'],
  truncated: r.truncated, size: r.size, sha256: r.sha256, seq: r.seq, prevHash: r.prev_hash, chainHash: r.chain_hash,
  signature: r.signature, startedAt: r.started_at, endedAt: r.ended_at, deletedAt: r.deleted_at,
});

export function recordingsTable(ctx: Ctx): Store['recordings'] {
  const { db, clock } = ctx;
  const one = (sessionId: string, channel: number) => db.one<RecordingRow>('SELECT * FROM recordings WHERE session_id = $1 AND channel = $2', [sessionId, channel]);
  return {
    async open(r) {
      await db.run("INSERT INTO recordings (session_id, channel, path, kind, state, started_at) VALUES ($1, $2, $3, $4, 'open', $5)",
        [r.sessionId, r.channel, r.path, r.kind, clock.now()]);
    },
    async close(r, sign) {
      return ctx.tx(async () => {
        // The chain's head is read and extended under its lock: recordings closing on two nodes at
        // once take turns, and the chain never forks.
        await ctx.lock(LOCK.recordings);
        const last = await db.one<{ seq: number; chain_hash: string }>('SELECT seq, chain_hash FROM recordings WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1');
        const row = await one(r.sessionId, r.channel);
        if (!row) throw new Error(`no recording ${r.sessionId}/${r.channel}`);
        // Closed already (a reaper and the node's own restart, or two reapers, recovering the same
        // file): the first close stands and the chain is not extended twice for one recording.
        if (row.state !== 'open') return toRecording(row);
        const seq = (last?.seq ?? 0) + 1;
        const prev = last?.chain_hash ?? RECORDINGS_GENESIS;
        const chain = recordingChainHash(prev, { seq, sessionId: r.sessionId, channel: r.channel, path: row.path, state: r.state, size: r.size, sha256: r.sha256 });
        const signature = sign(chain);
        await db.run(`UPDATE recordings SET state = $1, truncated = $2, size = $3, sha256 = $4, seq = $5, prev_hash = $6, chain_hash = $7, signature = $8, ended_at = $9
          WHERE session_id = $10 AND channel = $11 AND state = 'open'`,
        [r.state, r.truncated, r.size, r.sha256, seq, prev, chain, signature, clock.now(), r.sessionId, r.channel]);
        return toRecording((await one(r.sessionId, r.channel))!);
      });
    },
    async listOpen() {
      return (await db.rows<RecordingRow>("SELECT * FROM recordings WHERE state = 'open' ORDER BY started_at")).map(toRecording);
    },
    async head() {
      const last = await db.one<RecordingRow>('SELECT * FROM recordings WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1');
      return last ? { count: last.seq!, hash: last.chain_hash ?? '', last: `${last.session_id}-${last.channel}` } : { count: 0, hash: RECORDINGS_GENESIS, last: null };
    },
    async bySeq(seq) {
      const row = await db.one<RecordingRow>('SELECT * FROM recordings WHERE seq = $1', [seq]);
      return row ? toRecording(row) : null;
    },
    async list(sessionId) {
      const order = 'ORDER BY seq IS NULL, seq, started_at';
      const rows = sessionId === undefined
        ? await db.rows<RecordingRow>(`SELECT * FROM recordings ${order}`)
        : await db.rows<RecordingRow>(`SELECT * FROM recordings WHERE session_id = $1 ${order}`, [sessionId]);
      return rows.map(toRecording);
    },
  };
}
