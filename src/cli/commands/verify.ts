import { hostKeyVerifier, verifyAuditHead, verifyRecordings, type RecordingCheck } from '../../recorder/verify.js';
import { notFound } from '../../shared/errors.js';
import type { Command } from '../command.js';

/** Problems in capitals so they stand out in a long list. */
function verdictLabel(i: RecordingCheck): string {
  if (i.verdict === 'intact') return i.state === 'interrupted' ? 'intact (interrupted session)' : 'intact';
  return i.verdict === 'live' ? 'live' : i.verdict.toUpperCase();
}

export const commands: Command[] = [
  {
    names: ['verify'], args: '[SESSION_ID]',
    summary: 'check recordings (intact / modified / truncated / missing), their signed chain, and the audit log chain; exit 1 on any failure',
    json: true, positionals: { min: 0, max: 1 },
    async handler(ctx, _v, [sessionId]) {
      const { store, dataDir } = await ctx.open();
      if (sessionId !== undefined && !(await store.sessions.get(sessionId))) {
        throw notFound(`no session "${sessionId}"`, 'list sessions with: gatehouse sessions list');
      }
      const verifier = hostKeyVerifier(dataDir.hostKey);
      const rec = await verifyRecordings(store, dataDir.paths.recordings, verifier, sessionId);
      const audit = await store.audit.verify();
      const head = await verifyAuditHead(store, verifier);
      const auditOk = audit.ok && head.ok;
      const lines = [
        `recordings: ${rec.items.length} checked; chain of ${rec.chain.rows} ${rec.chain.ok ? 'intact and signed' : 'BROKEN'}`,
        ...rec.chain.problems.map((p) => `  chain: ${p}`),
        ...rec.items.map((i) => `  ${`${i.sessionId}-${i.channel}`.padEnd(24)} ${verdictLabel(i)}  ${i.file}`),
        audit.ok ? `audit log: intact (${audit.rows} events, head ${audit.head.slice(0, 16)}…)` : `audit log: BROKEN at event #${audit.badId}: ${audit.problem}`,
        head.ok ? (head.signedId === null ? '  (no signed head yet: the server signs it while it runs)' : `  signed head at event #${head.signedId}: valid`) : `  audit head: BROKEN: ${head.problem}`,
      ];
      return {
        exitCode: rec.ok && auditOk ? 0 : 1,
        text: lines.join('\n'),
        json: {
          ok: rec.ok && auditOk,
          recordings: { ok: rec.ok, chain: rec.chain, items: rec.items },
          audit: audit.ok ? { ok: head.ok, rows: audit.rows, head: audit.head, signedHead: head } : { ok: false, rows: audit.rows, badId: audit.badId, problem: audit.problem, signedHead: head },
        },
      };
    },
  },
];
