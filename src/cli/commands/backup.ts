import fs from 'node:fs';
import path from 'node:path';
import { VERSION } from '../../shared/version.js';
import { draft } from '../../audit/events.js';
import { witnessPath } from '../../audit/witness.js';
import { dataPaths } from '../../datadir/datadir.js';
import type { ArchiveSummary } from '../../ops/restore.js';
import { invalid, usageError } from '../../shared/errors.js';
import { str, type Command, type CommandContext, type Values } from '../command.js';
import { oneLine } from '../escape.js';
import { readInput, readSecretLine } from '../io.js';
import { commands as verifyCommands } from './verify.js';

/** backup and restore carry a SQLite store; with PostgreSQL (config store) they would miss the state. */
const postgresStore = (cmd: string) => invalid(`${cmd} works on the SQLite store; this configuration uses PostgreSQL (store)`,
  'back up the database with pg_dump (restore with pg_restore), and the data directory\'s key files and recordings with it');

/** The passphrase: the first line of --passphrase-file, else of standard input (asked without echo on a terminal). */
async function passphrase(ctx: CommandContext, values: Values): Promise<Buffer> {
  const file = str(values, 'passphrase-file');
  let line: string;
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw invalid(`cannot read the passphrase file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    line = text.split(/\r?\n/)[0] ?? '';
  } else if (ctx.stdin.isTTY) {
    line = await readSecretLine('Backup passphrase: ', ctx.stdin, ctx.stderr);
  } else {
    line = (await readInput('-', ctx.stdin)).split(/\r?\n/)[0] ?? '';
  }
  if (line === '') throw invalid('no passphrase given', 'give it on standard input or with --passphrase-file FILE (first line)');
  return Buffer.from(line, 'utf8');
}

function summary(s: ArchiveSummary): string[] {
  const m = s.manifest;
  return [
    `backup of ${oneLine(m.host)} taken ${m.createdAt} by gatehouse ${oneLine(m.gatehouse)}`,
    `  ${s.files} files, ${s.bytes} bytes, every SHA-256 matches the manifest`,
    `  database schema ${m.database.schema}, ${m.database.auditEvents} audit events, ${m.database.recordingsChained} recordings chained`,
    `  recordings ${m.recordings ? `included (${m.files.filter((f) => f.path.startsWith('recordings/')).length} files)` : 'NOT included (--no-recordings)'}`,
  ];
}

const passphraseOption = { 'passphrase-file': { type: 'string' } } as const;

export const commands: Command[] = [
  {
    names: ['backup'], args: '--out FILE [--no-recordings] [--passphrase-file F]',
    summary: 'write an encrypted backup (database, keys, master.key, config, recordings) while the server runs',
    help: `The passphrase is the first line of --passphrase-file F, or of standard input.
The archive is encrypted (scrypt, AES-256-GCM in authenticated chunks) and holds a manifest of SHA-256s.
--no-recordings leaves the recordings out (keep them with object-storage versioning instead).
Check an archive with: gatehouse backup verify FILE. Restore with: gatehouse restore FILE --data NEWDIR.`,
    options: { out: { type: 'string' }, 'no-recordings': { type: 'boolean' }, ...passphraseOption },
    positionals: { min: 0, max: 0 }, json: true,
    async handler(ctx, values) {
      const out = str(values, 'out');
      if (out === undefined) throw usageError('backup needs --out FILE');
      const config = ctx.config();
      // The archive holds the SQLite file: a PostgreSQL store is the database's to back up.
      if (config.store !== 'sqlite') throw postgresStore('backup');
      const paths = dataPaths(config.dataDir);
      const pass = await passphrase(ctx, values);
      const configFile = str(values, 'config') ?? (process.env.GATEHOUSE_CONFIG || undefined);
      // With object storage the recordings are in the bucket: they are kept by its versioning (and
      // replication), not copied into every backup; only the node's spool is local.
      const s3 = config.recording.storage?.s3;
      const { createBackup } = await import('../../ops/backup.js'); // loaded for this command only: every other CLI run starts faster without it
      const r = await createBackup({
        paths, witness: witnessPath(config, { paths }), configFile, out, passphrase: pass,
        recordings: values['no-recordings'] !== true && !s3, now: ctx.clock.now(), version: VERSION,
      });
      pass.fill(0);
      const { store } = await ctx.open();
      await store.audit.append(draft('admin.backup', ctx.actor, { file: path.resolve(out), recordings: r.manifest.recordings, files: r.manifest.files.length, bytes: r.bytes }));
      return {
        json: { file: path.resolve(out), bytes: r.bytes, files: r.manifest.files.length, recordings: r.manifest.recordings, database: r.manifest.database, missing: r.missing },
        text: [
          `wrote ${path.resolve(out)} (${r.bytes} bytes, ${r.manifest.files.length} files, ${r.manifest.database.auditEvents} audit events)`,
          ...(r.missing.length ? [`note: ${r.missing.length} recording file(s) were already missing (gatehouse verify says why)`] : []),
          ...(s3 ? [`note: recordings are in object storage (${oneLine(`s3://${s3.bucket}/${s3.prefix}`)}) and are NOT in this backup: keep them with the bucket's versioning (and replication); recordings not uploaded yet stay in ${oneLine(paths.recordings)} until they are`] : []),
          'keep the passphrase apart from the archive: without it nothing can be restored',
        ].join('\n'),
      };
    },
  },
  {
    names: ['backup', 'verify'], args: 'FILE [--passphrase-file F]',
    summary: 'check a backup archive (passphrase, every chunk, every SHA-256) without restoring it',
    options: passphraseOption, positionals: { min: 1, max: 1 }, json: true,
    async handler(ctx, values, [file]) {
      const pass = await passphrase(ctx, values);
      const { verifyArchive } = await import('../../ops/restore.js'); // loaded for this command only: every other CLI run starts faster without it
      const s = await verifyArchive(file!, pass);
      return { json: { ok: true, files: s.files, bytes: s.bytes, manifest: { ...s.manifest, files: undefined } }, text: ['backup OK', ...summary(s)].join('\n') };
    },
  },
  {
    names: ['restore'], args: 'FILE --data DIR [--passphrase-file F]',
    summary: 'restore a backup archive into a new, empty data directory, then run gatehouse verify on it',
    help: 'DIR must not exist or be empty. Every restored file is 0600, every directory 0700. Exit status is that of the verify.',
    options: passphraseOption, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [file]) {
      if (str(values, 'data') === undefined) throw usageError('restore needs --data DIR (a new, empty directory)');
      if (ctx.config().store !== 'sqlite') throw postgresStore('restore');
      const dir = ctx.config().dataDir;
      const pass = await passphrase(ctx, values);
      const { restoreArchive } = await import('../../ops/restore.js'); // loaded for this command only: every other CLI run starts faster without it
      const s = await restoreArchive(file!, pass, dir);
      const lines = [`restored ${s.files} files into ${dir}`, ...summary(s)];
      if (fs.existsSync(path.join(dir, 'gatehouse.yaml'))) {
        lines.push(`  the server's config is in ${path.join(dir, 'gatehouse.yaml')}: check dataDir (and any paths) in it before you use it`);
      }
      const { store } = await ctx.open();
      const head = await store.audit.head();
      if (head.count !== s.manifest.database.auditEvents || head.hash !== s.manifest.database.auditHead) {
        lines.push(`audit log: does NOT end where the backup's manifest says (#${s.manifest.database.auditEvents})`);
      }
      // Where this directory came from, in its own audit log (after the check against the manifest).
      await store.audit.append(draft('admin.restore', ctx.actor, { file: path.resolve(file!), backupTakenAt: s.manifest.createdAt, host: s.manifest.host }));
      const verify = verifyCommands.find((c) => c.names.join(' ') === 'verify')!;
      const v = await verify.handler(ctx, {}, []);
      lines.push('', 'gatehouse verify:', v.text ?? '');
      if (!s.manifest.recordings) lines.push('note: this backup holds no recordings (--no-recordings): copy them into recordings/ from where they are kept');
      return { text: lines.join('\n'), exitCode: v.exitCode ?? 0 };
    },
  },
];
