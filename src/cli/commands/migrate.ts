import fs from 'node:fs';
import path from 'node:path';
import { draft } from '../../audit/events.js';
import { witnessPath } from '../../audit/witness.js';
import { nodeLockPath } from '../../cluster/lock.js';
import { nodeName } from '../../cluster/node.js';
import type { Config } from '../../config/schema.js';
import { dataPaths, openDataDir } from '../../datadir/datadir.js';
import { acquireServeLock, type ServeLock } from '../../datadir/lock.js';
import type { CopiedRecordings } from '../../recorder/storage/copy.js';
import { createRecordingStorage } from '../../recorder/storage/index.js';
import { invalid, usageError } from '../../shared/errors.js';
import { redactUrl } from '../../store/postgres/redact.js';
import { str, table, type Command } from '../command.js';
import { oneLine } from '../escape.js';

/**
 * Every serve lock of the data directory (each node name's, and this config's even if no server of
 * that name ever ran): the copy reads a store no server is writing, and no server starts meanwhile.
 */
function lockDataDir(config: Config, dir: string, now: number): ServeLock[] {
  const mine = nodeLockPath(dir, nodeName(config));
  const locksDir = path.dirname(mine);
  const files = new Set([mine, ...fs.readdirSync(locksDir).filter((f) => f.endsWith('.serve.lock')).map((f) => path.join(locksDir, f))]);
  // The lock file of servers from before node names (datadir.ts paths.lock).
  const legacy = dataPaths(dir).lock;
  if (fs.existsSync(legacy)) files.add(legacy);
  const held: ServeLock[] = [];
  try {
    for (const f of [...files].sort()) held.push(acquireServeLock(f, now));
  } catch (err) {
    for (const l of held) l.release();
    throw err;
  }
  return held;
}

const UPLOAD_TIMEOUT_S = 3600;

export const commands: Command[] = [
  {
    names: ['migrate'], args: '--to postgres://USER@HOST:PORT/DB [--recordings s3] [--upload-timeout SECONDS]',
    summary: 'copy this SQLite store (every table, the whole audit chain) into an empty PostgreSQL database, and with --recordings s3 the local recordings into recording.storage.s3; then verify the result; exit 1 on any mismatch',
    help: `The server must be stopped: migrate takes the data directory's serve locks.
The SQLite file and the local recordings are only read: keep them until the new setup runs.
The target database must be empty (a new one from createdb); its schema is made by gatehouse's own
PostgreSQL migrations. Everything is copied in one transaction: an interrupted run keeps nothing.
--recordings s3 uploads every file under recordings/ (recordings, their .files/ content) to the
bucket of recording.storage.s3 in the config, before the copy commits; credentials come from the
standard AWS environment variables. Then the audit chain, the recordings (read back from the
bucket) and the witness are checked as gatehouse verify does, and the row counts are printed.`,
    options: { to: { type: 'string' }, recordings: { type: 'string' }, 'upload-timeout': { type: 'string' } },
    positionals: { min: 0, max: 0 }, json: true,
    async handler(ctx, values) {
      const to = str(values, 'to');
      if (to === undefined) throw usageError('migrate needs --to postgres://USER@HOST:PORT/DB');
      if (!/^postgres(ql)?:\/\//.test(to)) throw usageError(`--to must be a PostgreSQL URL (postgres://…), not "${oneLine(redactUrl(to))}"`);
      const rec = str(values, 'recordings');
      if (rec !== undefined && rec !== 's3') throw usageError(`--recordings takes "s3" (the bucket of recording.storage.s3), not "${oneLine(rec)}"`);
      const timeoutRaw = str(values, 'upload-timeout');
      const timeoutS = timeoutRaw === undefined ? UPLOAD_TIMEOUT_S : Number(timeoutRaw);
      if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw usageError('--upload-timeout takes a number of seconds');
      const config = ctx.config();
      if (config.store !== 'sqlite') {
        throw invalid('migrate copies from the SQLite store; this configuration already names PostgreSQL (store, env GATEHOUSE_STORE)',
          'run it with the configuration the SQLite server used, and give the new database with --to');
      }
      const s3 = config.recording.storage?.s3;
      if (rec === 's3' && !s3) {
        throw invalid('--recordings s3 needs recording.storage.s3 in the configuration (endpoint, bucket, region, prefix)', 'add it to the config file the new nodes will use, and pass it with --config');
      }
      if (!fs.existsSync(dataPaths(config.dataDir).db)) throw invalid(`no SQLite store in ${config.dataDir}`, 'give the data directory of the server to move with --data DIR');
      const dataDir = openDataDir(config.dataDir);
      // pg, the PostgreSQL store and the checks load here only, not on every CLI run.
      const [{ copySqliteToPostgres }, { createPostgresStore }, { copyRecordingsToS3 }, { verifyCheckpoints }, { hostKeyVerifier, verifyRecordings }] = await Promise.all([
        import('../../store/migrate.js'), import('../../store/postgres/index.js'), import('../../recorder/storage/copy.js'),
        import('../../audit/witnesscheck.js'), import('../../recorder/verify.js')]);
      const locks = lockDataDir(config, dataDir.paths.dir, ctx.clock.now());
      let copied: CopiedRecordings | undefined;
      try {
        const result = await copySqliteToPostgres({
          sqliteFile: dataDir.paths.db, url: to,
          // Uploaded before the rows commit: a failed upload keeps nothing in PostgreSQL, and a run again starts clean.
          beforeCommit: rec === 's3' && s3 ? async () => {
            copied = await copyRecordingsToS3({ root: dataDir.paths.recordings, s3, timeoutMs: timeoutS * 1000 });
            if (copied.failed.length > 0) {
              throw invalid(`${copied.failed.length} recording file(s) were not confirmed in ${copied.storage.location} (first: ${oneLine(copied.failed[0]!)}): nothing was kept in PostgreSQL`,
                'check the bucket and the AWS credentials, then run migrate again (the database is still empty)');
            }
          } : undefined,
        });
        // The result, checked as `gatehouse verify` checks a store: its own chain, its recordings where the new nodes will read them.
        const store = await createPostgresStore(to, ctx.clock);
        const storage = copied?.storage ?? createRecordingStorage(config, dataDir);
        try {
          const verifier = hostKeyVerifier(dataDir.hostKey);
          const witness = await verifyCheckpoints(store, verifier, witnessPath(config, dataDir));
          const recs = await verifyRecordings(store, storage, verifier, undefined, { witness, retention: config.recording.retention });
          const audit = await store.audit.verify();
          const sameHead = audit.ok && result.audit.ok && audit.rows === result.audit.rows && audit.head === result.audit.head;
          const countsOk = result.tables.every((t) => t.source === t.target);
          const witnessOk = witness.problems.length === 0 && witness.audit.problems.length === 0;
          const ok = countsOk && sameHead && recs.ok && witnessOk;
          // The new store's chain says where it came from: its first event of its own, once the copy checked out.
          const event = ok ? await store.audit.append(draft('admin.migrate', ctx.actor, {
            from: `sqlite ${dataDir.paths.db}`, to: redactUrl(to), auditRows: audit.rows, head: audit.head,
            recordingsUploaded: copied ? copied.files : null, recordingsChecked: recs.items.length,
          })) : null;
          const bad = recs.items.filter((i) => i.verdict !== 'intact' && i.verdict !== 'deleted' && i.verdict !== 'live');
          const lines = [
            `copied into ${redactUrl(to)}:`,
            table(['TABLE', 'SQLITE', 'POSTGRESQL', ''], result.tables.map((t) => [t.table, String(t.source), String(t.target), t.source === t.target ? 'ok' : 'MISMATCH'])),
            ...(copied ? [`recordings: ${copied.files} file(s), ${copied.bytes} bytes uploaded to ${copied.storage.location}`] : []),
            `recordings: ${recs.items.length} checked in ${storage.location}; chain of ${recs.chain.rows} ${recs.chain.ok ? 'intact and signed' : 'BROKEN'}`,
            ...recs.chain.problems.map((p) => `  chain: ${p}`),
            ...bad.map((i) => `  ${`${i.sessionId}-${i.channel}`.padEnd(24)} ${i.verdict.toUpperCase()}  ${oneLine(i.file)}`),
            audit.ok ? `audit log: intact (${audit.rows} events, head ${audit.head.slice(0, 16)}…)${sameHead ? ', the same head as the SQLite store' : ': NOT the head of the SQLite store'}`
              : `audit log: BROKEN at event #${audit.badId}: ${audit.problem}`,
            ...witness.problems.map((p) => `witness: ${p}`),
            ...witness.audit.problems.map((p) => `witness: audit head: ${p}`),
            ...(event ? [`audit log: admin.migrate appended to the new store as event #${event.id}`] : []),
            ok ? 'migrate: OK' : 'migrate: FAILED: the database holds the copy; drop it (dropdb) before trying again',
            ...(ok ? [`next: set store: ${redactUrl(to)} (or GATEHOUSE_STORE) in the nodes' configuration; the SQLite file${copied ? ' and the local recordings' : ''} stay as they were until you remove them`] : []),
          ];
          return {
            exitCode: ok ? 0 : 1,
            text: lines.join('\n'),
            json: {
              ok, to: redactUrl(to), tables: result.tables,
              recordings: { ok: recs.ok, checked: recs.items.length, chain: recs.chain, problems: bad, uploaded: copied ? { files: copied.files, bytes: copied.bytes, to: copied.storage.location } : null },
              audit: audit.ok ? { ok: sameHead, rows: audit.rows, head: audit.head } : { ok: false, rows: audit.rows, badId: audit.badId, problem: audit.problem },
              witness: { ok: witnessOk, problems: [...witness.problems, ...witness.audit.problems] },
              event: event ? event.id : null,
            },
          };
        } finally {
          if (!copied) await storage.stop(0);
          await store.close();
        }
      } finally {
        await copied?.close();
        for (const l of locks) l.release();
      }
    },
  },
];
