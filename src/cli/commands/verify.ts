import type { WitnessReport } from '../../audit/witnesscheck.js';
import { witnessPath } from '../../audit/witness.js';
import type { RecordingCheck } from '../../recorder/verify.js';
import { createRecordingStorage } from '../../recorder/storage/index.js';
import path from 'node:path';
import { notFound } from '../../shared/errors.js';
import { oneLine } from '../escape.js';
import type { Command } from '../command.js';

/** Problems in capitals so they stand out in a long list. */
function verdictLabel(i: RecordingCheck): string {
  if (i.verdict === 'intact') return i.state === 'interrupted' ? 'intact (interrupted session)' : 'intact';
  if (i.verdict === 'deleted') return `deleted by retention on ${new Date(i.deletedAt ?? 0).toISOString().slice(0, 10)}`;
  return i.verdict === 'live' ? 'live' : i.verdict.toUpperCase();
}

function witnessLines(w: WitnessReport): string[] {
  const head = w.audit.signed === null
    ? '  (no signed checkpoint yet)'
    : `  signed head at event #${w.audit.signed}${w.audit.problems.length === 0 ? ': valid' : ''}${w.audit.rows > w.audit.signed ? ` (${w.audit.rows - w.audit.signed} newer events not yet checkpointed)` : ''}`;
  return [
    ...(w.audit.problems.length === 0 ? [head] : w.audit.problems.map((p) => `  audit head: BROKEN: ${p}`)),
    w.problems.length > 0 ? `witness: ${w.file}: BROKEN`
      : !w.witness.exists ? `witness: ${w.file}: missing`
        : `witness: ${w.file}: ${w.witness.valid} signed checkpoint(s), all valid`,
    ...w.problems.map((p) => `  ${p}`),
  ];
}

export const commands: Command[] = [
  {
    names: ['verify'], args: '[SESSION_ID]',
    summary: 'check recordings (intact / modified / truncated / missing), their signed chain, the audit log chain, and that the database still holds everything the witness (audit.witness) names; exit 1 on any failure',
    json: true, positionals: { min: 0, max: 1 },
    async handler(ctx, _v, [sessionId]) {
      const { store, dataDir, config } = await ctx.open();
      if (sessionId !== undefined && !(await store.sessions.get(sessionId))) {
        throw notFound(`no session "${sessionId}"`, 'list sessions with: gatehouse sessions list');
      }
      const [{ verifyCheckpoints }, { hostKeyVerifier, verifyRecordings }] = await Promise.all([
        import('../../audit/witnesscheck.js'), import('../../recorder/verify.js')]); // loaded for this command only: every other CLI run starts faster without it
      const verifier = hostKeyVerifier(dataDir.hostKey);
      const witness = await verifyCheckpoints(store, verifier, witnessPath(config, dataDir));
      // Recordings are read where they are kept: the data directory, or the bucket (recording.storage.s3).
      const storage = createRecordingStorage(config, dataDir);
      const rec = await verifyRecordings(store, storage, verifier, sessionId, { witness, retention: config.recording.retention }).finally(() => storage.stop(0));
      const rel = witness.file === null ? null : path.relative(path.resolve(config.dataDir), path.resolve(witness.file));
      const insideDataDir = rel !== null && rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
      const audit = await store.audit.verify();
      const auditOk = audit.ok && witness.audit.problems.length === 0;
      const ok = rec.ok && auditOk && witness.problems.length === 0;
      const lines = [
        `recordings: ${rec.items.length} checked; chain of ${rec.chain.rows} ${rec.chain.ok ? 'intact and signed' : 'BROKEN'}`,
        ...rec.chain.problems.map((p) => `  chain: ${p}`),
        ...rec.items.map((i) => `  ${`${i.sessionId}-${i.channel}`.padEnd(24)} ${verdictLabel(i)}  ${oneLine(i.file)}`),
        audit.ok ? `audit log: intact (${audit.rows} events, head ${audit.head.slice(0, 16)}…)` : `audit log: BROKEN at event #${audit.badId}: ${audit.problem}`,
        ...witnessLines(witness),
        ...(insideDataDir ? [`witness: note: ${oneLine(witness.file ?? '')} is inside the data directory, so whoever can rewrite the database can rewrite it too; put it on another volume or ship it off the machine (audit.witness)`] : []),
      ];
      return {
        exitCode: ok ? 0 : 1,
        text: lines.join('\n'),
        json: {
          ok,
          recordings: { ok: rec.ok, chain: rec.chain, items: rec.items },
          audit: audit.ok
            ? { ok: auditOk, rows: audit.rows, head: audit.head, signedHead: witness.audit }
            : { ok: false, rows: audit.rows, badId: audit.badId, problem: audit.problem, signedHead: witness.audit },
          witness: { ok: witness.problems.length === 0, file: witness.file, insideDataDir, exists: witness.witness.exists, checkpoints: witness.witness.valid, problems: witness.problems },
        },
      };
    },
  },
];
