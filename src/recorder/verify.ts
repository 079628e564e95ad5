import ssh2 from 'ssh2';
import type { Verifier } from '../audit/checkpoint.js';
import { verifyCheckpoints, type WitnessReport } from '../audit/witnesscheck.js';
import type { RecordingRecord, Store } from '../store/types.js';
import { RECORDINGS_GENESIS, recordingChainHash } from './chain.js';
import { contentChecks } from './filecontent.js';
import { asStorage } from './storage/local.js';
import type { RecordingStorage } from './storage/types.js';

/**
 * What `gatehouse verify` says about each recording: intact, modified (bytes differ), truncated
 * (shorter than recorded), missing (file gone), or live (still being written); and whether the
 * chain of recording rows is whole and signed by this bastion's key.
 */
export type Verdict = 'intact' | 'modified' | 'truncated' | 'missing' | 'live' | 'deleted';

export interface RecordingCheck {
  sessionId: string;
  channel: number;
  file: string;
  state: RecordingRecord['state'];
  verdict: Verdict;
  /** 'deleted': when retention deleted it (its recording.deleted event is the tombstone). */
  deletedAt?: number;
}

export interface RecordingsReport {
  ok: boolean;
  items: RecordingCheck[];
  chain: { ok: boolean; rows: number; problems: string[] };
}

export function hostKeyVerifier(hostKey: Buffer): Verifier {
  const parsed = ssh2.utils.parseKey(hostKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error('the host key cannot verify signatures');
  return (data, sig) => key.verify(data, sig) === true;
}

async function checkFile(storage: RecordingStorage, r: RecordingRecord, tombstones: Map<string, number>, due: (sessionId: string) => number | null): Promise<Verdict> {
  if (r.state === 'open') return 'live';
  // Deleted by retention: green only with its audit event (hash-chained, witnessed), which names the
  // same hash the row keeps, written no earlier than the retention this bastion runs with allows
  // (the session's end + recording.retention). A row marked deleted without such an event — or a
  // deletion of a recording retention could not have reached yet, or with retention off — is a
  // file that went missing: someone who can write the database cannot pass a deletion off as policy.
  if (r.deletedAt != null) {
    const at = tombstones.get(`${r.sessionId}|${r.channel}|${r.sha256}`);
    const from = due(r.sessionId);
    return at !== undefined && from !== null && at >= from ? 'deleted' : 'missing';
  }
  // Read through the storage: the local file, or the object (its spool copy while not uploaded yet).
  const d = await storage.digest(r.path);
  if (d === null) return 'missing';
  if (r.size !== null && d.size < r.size && r.sha256 !== d.sha256) return 'truncated';
  return d.sha256 === r.sha256 && d.size === r.size ? 'intact' : 'modified';
}

/**
 * `opts.witness` is the report on the witness file (the CLI passes it); without it the latest
 * checkpoint kept in the database is checked instead (the web UI's per-session view).
 */
export async function verifyRecordings(
  store: Store, storage: RecordingStorage | string, verify: Verifier, sessionId?: string,
  opts: { witness?: WitnessReport; /** recording.retention (ms; null: kept for ever, so no deletion is policy). */ retention?: number | null } = {},
): Promise<RecordingsReport> {
  const all = await store.recordings.list();
  const problems: string[] = [];
  let prev = RECORDINGS_GENESIS;
  let expectSeq = 1;
  const closed = all.filter((r) => r.seq !== null);
  for (const r of closed) {
    const id = `${r.sessionId}-${r.channel}`;
    if (r.seq !== expectSeq) problems.push(`recording row(s) ${expectSeq}${r.seq! - 1 > expectSeq ? `-${r.seq! - 1}` : ''} removed before ${id}`);
    if (r.prevHash !== prev) problems.push(`${id}: link to the previous recording broken`);
    const chain = recordingChainHash(r.prevHash ?? '', { seq: r.seq!, sessionId: r.sessionId, channel: r.channel, path: r.path, state: r.state, size: r.size ?? 0, sha256: r.sha256 ?? '' });
    if (chain !== r.chainHash) problems.push(`${id}: row changed (chain hash mismatch)`);
    else if (!r.signature || !verify(Buffer.from(chain, 'hex'), Buffer.from(r.signature, 'base64'))) problems.push(`${id}: signature is not this bastion's`);
    prev = r.chainHash ?? '';
    expectSeq = r.seq! + 1;
  }
  // Rows removed from the END leave no broken link: the signed checkpoints tell (audit/witnesscheck.ts).
  const witness = opts.witness ?? await verifyCheckpoints(store, verify);
  problems.push(...witness.recordings.problems);
  const shown = all.filter((r) => sessionId === undefined || r.sessionId === sessionId);
  const tombstones = new Map<string, number>();
  const dueAt = new Map<string, number | null>();
  const retention = opts.retention ?? null;
  for (const id of new Set(shown.filter((r) => r.deletedAt != null).map((r) => r.sessionId))) {
    for (const ev of await store.audit.list({ type: 'recording.deleted', session: id, limit: 100_000 })) {
      if (ev.data.reason !== 'retention') continue;
      tombstones.set(`${String(ev.data.session)}|${String(ev.data.channel)}|${String(ev.data.sha256)}`, ev.ts);
    }
    const s = await store.sessions.get(id);
    dueAt.set(id, retention === null || !s || s.endedAt === null ? null : s.endedAt + retention);
  }
  const where = asStorage(storage);
  const items: RecordingCheck[] = [];
  for (const r of shown) {
    const verdict = await checkFile(where, r, tombstones, (id) => dueAt.get(id) ?? null);
    items.push({ sessionId: r.sessionId, channel: r.channel, file: r.path, state: r.state, verdict, ...(verdict === 'deleted' ? { deletedAt: r.deletedAt! } : {}) });
  }
  // Stored file contents (recording.fileContent), each against its marker in an intact recording.
  const intact = new Set(items.filter((i) => i.verdict === 'intact').map((i) => `${i.sessionId}-${i.channel}`));
  items.push(...await contentChecks(where, shown, (r) => intact.has(`${r.sessionId}-${r.channel}`)));
  const filesOk = items.every((i) => i.verdict === 'intact' || i.verdict === 'live' || i.verdict === 'deleted');
  return { ok: filesOk && problems.length === 0, items, chain: { ok: problems.length === 0, rows: closed.length, problems } };
}
