import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { RecordingRecord, Store } from '../store/types.js';
import { RECORDINGS_GENESIS, recordingChainHash } from './chain.js';
import { fileDigest } from './file.js';

/**
 * What `gatehouse verify` says about each recording: intact, modified (bytes differ), truncated
 * (shorter than recorded), missing (file gone), or live (still being written); and whether the
 * chain of recording rows is whole and signed by this bastion's key.
 */
export type Verdict = 'intact' | 'modified' | 'truncated' | 'missing' | 'live';

export interface RecordingCheck {
  sessionId: string;
  channel: number;
  file: string;
  state: RecordingRecord['state'];
  verdict: Verdict;
}

export interface RecordingsReport {
  ok: boolean;
  items: RecordingCheck[];
  chain: { ok: boolean; rows: number; problems: string[] };
}

type Verifier = (data: Buffer, signature: Buffer) => boolean;

export function hostKeyVerifier(hostKey: Buffer): Verifier {
  const parsed = ssh2.utils.parseKey(hostKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error('the host key cannot verify signatures');
  return (data, sig) => key.verify(data, sig) === true;
}

function checkFile(root: string, r: RecordingRecord): Verdict {
  if (r.state === 'open') return 'live';
  const file = path.join(root, r.path);
  if (!fs.existsSync(file)) return 'missing';
  const d = fileDigest(file);
  if (r.size !== null && d.size < r.size && r.sha256 !== d.sha256) return 'truncated';
  return d.sha256 === r.sha256 && d.size === r.size ? 'intact' : 'modified';
}

export async function verifyRecordings(store: Store, root: string, verify: Verifier, sessionId?: string): Promise<RecordingsReport> {
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
  const headText = await store.meta.get('recordings.head');
  if (headText) {
    const head = JSON.parse(headText) as { seq: number; chainHash: string; signature: string };
    if (!verify(Buffer.from(head.chainHash, 'hex'), Buffer.from(head.signature, 'base64'))) problems.push('the signed chain head is not this bastion\'s');
    else if (head.seq !== expectSeq - 1 || head.chainHash !== prev) problems.push(`the last recording row(s) were removed (signed head is #${head.seq}, table ends at #${expectSeq - 1})`);
  } else if (closed.length > 0) {
    problems.push('the signed chain head is missing');
  }
  const items = all
    .filter((r) => sessionId === undefined || r.sessionId === sessionId)
    .map((r): RecordingCheck => ({ sessionId: r.sessionId, channel: r.channel, file: r.path, state: r.state, verdict: checkFile(root, r) }));
  const filesOk = items.every((i) => i.verdict === 'intact' || i.verdict === 'live');
  return { ok: filesOk && problems.length === 0, items, chain: { ok: problems.length === 0, rows: closed.length, problems } };
}

export interface AuditHeadCheck {
  ok: boolean;
  problem: string | null;
  signedId: number | null;
}

/** The signed audit head must name a row that still exists with the same hash. */
export async function verifyAuditHead(store: Store, verify: Verifier): Promise<AuditHeadCheck> {
  const text = await store.meta.get('audit.head');
  if (!text) return { ok: true, problem: null, signedId: null };
  const head = JSON.parse(text) as { id: number; hash: string; signature: string };
  if (!verify(Buffer.from(head.hash, 'hex'), Buffer.from(head.signature, 'base64'))) {
    return { ok: false, problem: "the signed audit head is not this bastion's", signedId: head.id };
  }
  const row = (await store.audit.after(head.id - 1, 1))[0];
  if (!row || row.id !== head.id) return { ok: false, problem: `audit rows up to #${head.id} were signed but the log now ends earlier (rows removed)`, signedId: head.id };
  if (row.hash !== head.hash) return { ok: false, problem: `audit row #${head.id} differs from the one that was signed`, signedId: head.id };
  return { ok: true, problem: null, signedId: head.id };
}
