import type { Store } from '../store/types.js';
import { parseCheckpoint, signatureOk, type Checkpoint, type Verifier } from './checkpoint.js';
import { CHECKPOINT_KEY, readWitness } from './witness.js';

/**
 * What the checkpoints say about the database: every checkpoint must be signed by this bastion,
 * and the database must still hold everything each one names (at least that many rows, and the
 * row at that count with that hash). A database AHEAD of the witness is fine (rows written since
 * the last checkpoint); a database BEHIND it has lost rows. Rows with no checkpoint at all are a
 * failure too: deleting the witness must not make the newest rows deletable again.
 */
export interface WitnessReport {
  ok: boolean;
  /** The witness file checked; null when only the database's own copy was (the web UI). */
  file: string | null;
  /** Valid checkpoints checked (the witness's lines and the database's copy). */
  checkpoints: number;
  /** Valid lines in the witness file, and whether it exists. */
  witness: { exists: boolean; valid: number };
  audit: { rows: number; signed: number | null; problems: string[] };
  recordings: { rows: number; signed: number | null; problems: string[] };
  /** About the witness itself: lines that are not checkpoints or not signed by this bastion. */
  problems: string[];
}

interface Source {
  where: string;
  c: Checkpoint;
}

/** At most this many messages of one kind; the rest are counted. */
const SHOW = 5;

function capped(list: string[], what: string): string[] {
  return list.length <= SHOW ? list : [...list.slice(0, SHOW), `… and ${list.length - SHOW} more ${what}`];
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
const range = (from: number, to: number) => (from === to ? `#${to}` : `#${from}–#${to}`);

export async function verifyCheckpoints(store: Store, verify: Verifier, witnessFile?: string): Promise<WitnessReport> {
  const problems: string[] = [];
  const sources: Source[] = [];
  let inWitness = 0;
  let witnessLines = 0;
  let exists = false;
  if (witnessFile !== undefined) {
    const w = readWitness(witnessFile);
    const bad: string[] = [];
    witnessLines = w.lines.length;
    exists = w.exists;
    for (const { line, checkpoint } of w.lines) {
      if (checkpoint === null) bad.push(`witness line ${line} is not a checkpoint (edited or corrupted)`);
      else if (!signatureOk(checkpoint, verify)) bad.push(`witness line ${line} is not signed by this bastion's host key (edited or forged)`);
      else { sources.push({ where: `witness line ${line}`, c: checkpoint }); inWitness++; }
    }
    problems.push(...capped(bad, 'bad witness lines'));
  }
  const stored = await store.meta.get(CHECKPOINT_KEY);
  if (stored !== null) {
    const c = parseCheckpoint(stored);
    if (c === null || !signatureOk(c, verify)) problems.push("the checkpoint kept in the database is not signed by this bastion's host key");
    else sources.push({ where: 'the copy in the database', c });
  }

  const auditHead = await store.audit.head();
  const recHead = await store.recordings.head();
  const audit = { rows: auditHead.count, signed: null as number | null, problems: [] as string[] };
  const recordings = { rows: recHead.count, signed: null as number | null, problems: [] as string[] };

  // Rows but nothing signed that covers them.
  const anchored = witnessFile !== undefined ? inWitness > 0 : sources.length > 0;
  if (!anchored && (auditHead.count > 0 || recHead.count > 0)) {
    const where = witnessFile !== undefined ? `the witness ${witnessFile} ${witnessLines > 0 ? 'holds no valid checkpoint' : 'is missing or empty'}` : 'no signed checkpoint exists';
    const hint = 'if this bastion was just upgraded, start the server once to write the first checkpoint';
    if (auditHead.count > 0) audit.problems.push(`the database has ${plural(auditHead.count, 'audit row')} but ${where}: rows at the end may have been removed unnoticed (${hint})`);
    if (recHead.count > 0) recordings.problems.push(`the database has ${plural(recHead.count, 'closed recording')} but ${where}: recordings at the end may have been removed unnoticed`);
  }

  // The database must hold what each checkpoint names. Rows past the end are reported once, as
  // the widest gap; a row that differs is reported per position.
  let auditMissing: Source | null = null;
  let recMissing: Source | null = null;
  const missingNames = new Map<number, string>();
  const auditChanged = new Map<number, string>();
  const recChanged = new Map<number, string>();
  for (const s of sources) {
    const { audit: a, recordings: r } = s.c;
    audit.signed = Math.max(audit.signed ?? 0, a.count);
    recordings.signed = Math.max(recordings.signed ?? 0, r.count);
    if (a.count > auditHead.count) {
      if (!auditMissing || a.count > auditMissing.c.audit.count) auditMissing = s;
    } else if (a.count > 0 && !auditChanged.has(a.count)) {
      const row = await store.audit.get(a.count);
      if (!row || row.hash !== a.hash) auditChanged.set(a.count, `audit row #${a.count} differs from the one signed at ${s.c.at} (${s.where}): it was replaced`);
    }
    if (r.count > recHead.count) {
      if (!recMissing || r.count > recMissing.c.recordings.count) recMissing = s;
      if (r.last !== null) missingNames.set(r.count, r.last);
    } else if (r.count > 0 && !recChanged.has(r.count)) {
      const row = await store.recordings.bySeq(r.count);
      if (!row || row.chainHash !== r.hash) {
        recChanged.set(r.count, `recording #${r.count}${r.last ? ` (${r.last})` : ''} differs from the one signed at ${s.c.at} (${s.where}): it was replaced`);
      }
    }
  }
  if (auditMissing) {
    const n = auditMissing.c.audit.count;
    audit.problems.push(`audit rows up to #${n} were signed but the log now ends earlier (at #${auditHead.count}): rows ${range(auditHead.count + 1, n)} were removed (checkpoint of ${auditMissing.c.at}, ${auditMissing.where})`);
  }
  audit.problems.push(...capped([...auditChanged.values()], 'replaced audit rows'));
  if (recMissing) {
    const n = recMissing.c.recordings.count;
    const named = [...missingNames.entries()].sort((x, y) => x[0] - y[0]).map(([seq, id]) => `#${seq} ${id}`);
    recordings.problems.push(`the last recording row(s) were removed: the chain ends at #${recHead.count} but recordings up to #${n} were signed (checkpoint of ${recMissing.c.at}, ${recMissing.where}); missing ${range(recHead.count + 1, n)}${named.length ? `, among them ${capped(named, 'recordings').join(', ')}` : ''}`);
  }
  recordings.problems.push(...capped([...recChanged.values()], 'replaced recordings'));

  return {
    ok: problems.length === 0 && audit.problems.length === 0 && recordings.problems.length === 0,
    file: witnessFile ?? null,
    checkpoints: sources.length,
    witness: { exists, valid: inWitness },
    audit,
    recordings,
    problems,
  };
}
