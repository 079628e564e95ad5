import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { DataPaths } from '../datadir/datadir.js';
import { localRecordingFile } from '../recorder/storage/local.js';
import { GatehouseError } from '../shared/errors.js';
import { contentMarkers } from '../recorder/filecontent.js';
import { ArchiveWriter, DEFAULT_KDF, type KdfParams } from './archive.js';
import { BundleWriter, safePath, type Manifest } from './bundle.js';

/**
 * `gatehouse backup`: a consistent copy of a data directory, taken while the server runs.
 *
 * Order matters for consistency. The witness is read first: every checkpoint in it names rows the
 * database already holds, and the snapshot taken next holds at least those. The database is copied
 * with SQLite's online backup API (a file copy of a WAL database is not a backup). The recordings
 * are those the snapshot names, read after it: a closed recording's file never changes, and an
 * open one (a live session) is restored as the interrupted session it then is.
 */
export const MIN_PASSPHRASE = 12;

export interface BackupOptions {
  paths: DataPaths;
  /** The witness file (config audit.witness), included when it exists. */
  witness: string;
  /** The config file the server runs with, if any. */
  configFile?: string | undefined;
  out: string;
  passphrase: Buffer;
  recordings: boolean;
  now: number;
  version: string;
  kdf?: KdfParams;
}

export interface BackupResult {
  manifest: Manifest;
  bytes: number;
  /** Recording rows whose file was not there (retention, or already missing: verify says which). */
  missing: string[];
}

interface SnapshotInfo {
  schema: number;
  auditEvents: number;
  auditHead: string;
  recordingsChained: number;
  recordingsHead: string;
  recordings: { path: string; kind: string }[];
}

async function snapshot(db: string, dest: string): Promise<SnapshotInfo> {
  const src = new Database(db, { fileMustExist: true, timeout: 5000 });
  try {
    await src.backup(dest);
  } finally {
    src.close();
  }
  const snap = new Database(dest, { fileMustExist: true });
  try {
    // One self-contained file: no -wal beside it (the server puts it back in WAL mode at start).
    snap.pragma('journal_mode = DELETE');
    // Short-lived login state is not restored: a restored MFA grace would let a key log in without
    // its TOTP on the restored server, and TOTP-prompt seats belong to connections long gone.
    for (const t of ['mfa_grace', 'mfa_pending']) {
      if (snap.prepare<[string], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?").get(t)!.n > 0) snap.exec(`DELETE FROM ${t}`);
    }
    const check = snap.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new GatehouseError('GH_STORE', `the database copy fails SQLite's check: ${String(check)}`, { hint: 'run gatehouse verify on the server, and sqlite3 gatehouse.db "PRAGMA integrity_check"' });
    const cols = snap.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('recordings')").all().map((c) => c.name);
    const notDeleted = cols.includes('deleted_at') ? 'WHERE deleted_at IS NULL' : '';
    const audit = snap.prepare<[], { id: number; hash: string }>('SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1').get();
    const rec = snap.prepare<[], { seq: number; chain_hash: string }>('SELECT seq, chain_hash FROM recordings WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1').get();
    return {
      schema: snap.pragma('user_version', { simple: true }) as number,
      auditEvents: audit?.id ?? 0, auditHead: audit?.hash ?? '',
      recordingsChained: rec?.seq ?? 0, recordingsHead: rec?.chain_hash ?? '',
      recordings: snap.prepare<[], { path: string; kind: string }>(`SELECT path, kind FROM recordings ${notDeleted} ORDER BY started_at`).all(),
    };
  } finally {
    snap.close();
  }
}

/** Never copied as files: the database (snapshotted instead), its journals, the lock, temp files, recordings (from the rows). */
const SKIP = /^(gatehouse\.db(-wal|-shm|-journal)?|serve\.lock|witness\.log|gatehouse\.yaml|.*\.(tmp|partial))$/;

/** Regular files of the data directory to back up, as relative paths with "/", sorted; symlinks are not followed. */
export function dataFiles(paths: DataPaths, rel = '', depth = 0): string[] {
  const out: string[] = [];
  const dir = path.join(paths.dir, ...rel.split('/').filter(Boolean));
  for (const name of fs.readdirSync(dir).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    // locks/: the per-node serve locks (cluster/lock.ts), held by running servers, never state.
    if (rel === '' && (name === 'recordings' || name === 'locks' || SKIP.test(name))) continue;
    if (safePath(r) === null) continue;
    const st = fs.lstatSync(path.join(dir, name));
    if (st.isFile()) out.push(r);
    else if (st.isDirectory() && depth < 4) out.push(...dataFiles(paths, r, depth + 1));
  }
  return out;
}

function readIfExists(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function createBackup(o: BackupOptions): Promise<BackupResult> {
  const { paths } = o;
  if (!fs.existsSync(paths.db)) {
    throw new GatehouseError('GH_DATADIR', `no gatehouse database in ${paths.dir}`, { hint: 'give the data directory the server runs with: --data DIR' });
  }
  if (o.passphrase.length < MIN_PASSPHRASE) {
    throw new GatehouseError('GH_INVALID', `the passphrase is too short (at least ${MIN_PASSPHRASE} characters)`, { hint: 'the archive holds the private keys: use a long passphrase and keep it apart from the archive' });
  }
  const out = path.resolve(o.out);
  if (fs.existsSync(out)) throw new GatehouseError('GH_EXISTS', `${out} already exists`, { hint: 'choose a new file name; a backup never overwrites a file' });
  const witness = readIfExists(o.witness);
  // The snapshot is the database in clear: it sits beside the archive being written (where the
  // operator chose to put secrets), not in a shared temp dir where a crash would leave it.
  const tmpDir = fs.mkdtempSync(path.join(path.dirname(out), '.gatehouse-backup-'));
  fs.chmodSync(tmpDir, 0o700);
  const partial = `${out}.${process.pid}.${randomBytes(4).toString('hex')}.partial`;
  let fd: number | null = null;
  try {
    const db = path.join(tmpDir, 'gatehouse.db');
    const info = await snapshot(paths.db, db);
    fd = fs.openSync(partial, 'wx', 0o600);
    const archive = await ArchiveWriter.create(fd, o.passphrase, o.kdf ?? DEFAULT_KDF);
    const bundle = new BundleWriter((b) => archive.write(b));
    bundle.addFile('gatehouse.db', db);
    fs.rmSync(db, { force: true });
    // The keys, master.key and whatever else the server keeps beside the database (a CA key, the
    // per-target host keys): every regular file, except the live database files and the lock.
    for (const rel of dataFiles(paths)) bundle.addFile(rel, path.join(paths.dir, ...rel.split('/')));
    if (witness) bundle.addBuffer('witness.log', witness);
    if (o.configFile !== undefined) bundle.addFile('gatehouse.yaml', o.configFile);
    const missing: string[] = [];
    if (o.recordings) {
      for (const r of info.recordings) {
        const file = localRecordingFile(paths.recordings, r.path);
        if (file === null || !fs.existsSync(file)) { missing.push(r.path); continue; }
        bundle.addFile(`recordings/${r.path.split(path.sep).join('/')}`, file);
        // Stored file contents (recording.fileContent), named by the transfer recording's markers:
        // without them a restored bastion's verify would report them missing.
        if (r.kind !== 'transfer') continue;
        for (const m of contentMarkers(fs.readFileSync(file), r.path)) {
          const c = localRecordingFile(paths.recordings, m.file);
          if (c !== null && fs.existsSync(c)) bundle.addFile(`recordings/${m.file}`, c);
          else missing.push(m.file);
        }
      }
    }
    const manifest = bundle.finish({
      format: 'gatehouse-backup-manifest', version: 1, createdAt: new Date(o.now).toISOString(), gatehouse: o.version, host: os.hostname(),
      recordings: o.recordings,
      database: { schema: info.schema, auditEvents: info.auditEvents, auditHead: info.auditHead, recordingsChained: info.recordingsChained, recordingsHead: info.recordingsHead },
    });
    archive.finish();
    fs.fsyncSync(fd);
    const bytes = fs.fstatSync(fd).size;
    fs.closeSync(fd);
    fd = null;
    // A link fails if the name was taken meanwhile: never overwrite.
    fs.linkSync(partial, out);
    return { manifest, bytes, missing };
  } finally {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(partial, { force: true });
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}
