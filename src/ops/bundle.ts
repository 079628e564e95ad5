import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { ArchiveError } from './archive.js';

/**
 * What goes inside the encrypted container: a sequence of entries, each one JSON line then its
 * bytes, the manifest last.
 *
 *   {"type":"file","path":"gatehouse.db","size":N}\n  <N bytes>
 *   …
 *   {"type":"manifest","size":M}\n  <M bytes of JSON: every file's path, size and SHA-256>
 *
 * Paths are relative to the data directory, in a fixed vocabulary (see safePath): a restore
 * writes nothing outside the directory it was given, whatever an archive says.
 */
export interface ManifestFile { path: string; size: number; sha256: string }

export interface Manifest {
  format: 'gatehouse-backup-manifest';
  version: 1;
  createdAt: string;
  gatehouse: string;
  host: string;
  /** False for --no-recordings: the recordings are expected from object-storage versioning instead. */
  recordings: boolean;
  database: { schema: number; auditEvents: number; auditHead: string; recordingsChained: number; recordingsHead: string };
  files: ManifestFile[];
}

const MAX_LINE = 4096;
const MAX_MANIFEST = 256 << 20;

/** Path components a backup may hold: plain names, no dot files, nothing that climbs out. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** The relative path (inside the data directory) if it is one a backup may hold, else null. */
export function safePath(p: unknown): string | null {
  if (typeof p !== 'string' || p.length === 0 || p.length > 512) return null;
  const parts = p.split('/');
  if (parts.length > 8 || !parts.every((s) => NAME.test(s))) return null;
  return p;
}

/** Appends entries to a sink (the archive writer), hashing each file as it goes. */
export class BundleWriter {
  readonly files: ManifestFile[] = [];

  constructor(private readonly sink: (b: Buffer) => void) {}

  private header(obj: Record<string, unknown>): void {
    this.sink(Buffer.from(JSON.stringify(obj) + '\n', 'utf8'));
  }

  addBuffer(rel: string, data: Buffer): void {
    if (safePath(rel) === null) throw new Error(`refusing to back up an unexpected path: ${rel}`);
    this.header({ type: 'file', path: rel, size: data.length });
    this.sink(data);
    this.files.push({ path: rel, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
  }

  /**
   * A file read in bounded pieces, up to the size it had when we started (a recording still being
   * written grows: the part past that size belongs to a later backup).
   */
  addFile(rel: string, file: string): void {
    if (safePath(rel) === null) throw new Error(`refusing to back up an unexpected path: ${rel}`);
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      this.header({ type: 'file', path: rel, size });
      const hash = createHash('sha256');
      const buf = Buffer.alloc(1 << 20);
      let done = 0;
      while (done < size) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - done), done);
        if (n === 0) throw new Error(`${rel} shrank while it was being backed up`);
        const piece = Buffer.from(buf.subarray(0, n));
        hash.update(piece);
        this.sink(piece);
        done += n;
      }
      this.files.push({ path: rel, size, sha256: hash.digest('hex') });
    } finally {
      fs.closeSync(fd);
    }
  }

  finish(manifest: Omit<Manifest, 'files'>): Manifest {
    const full: Manifest = { ...manifest, files: this.files };
    const data = Buffer.from(JSON.stringify(full), 'utf8');
    this.header({ type: 'manifest', size: data.length });
    this.sink(data);
    return full;
  }
}

export type BundleEvent =
  | { kind: 'file'; path: string; size: number }
  | { kind: 'data'; data: Buffer }
  | { kind: 'end-file'; path: string; size: number; sha256: string }
  | { kind: 'manifest'; manifest: Manifest };

const bad = (what: string) => new ArchiveError(`the backup's content is not valid: ${what}`, 'nothing was restored; use another copy of the backup');

/**
 * Parses the decrypted content into entries; every file's SHA-256 is computed here, and the
 * manifest is checked against what was actually read (same files, sizes and hashes, nothing extra).
 */
export async function* readBundle(chunks: AsyncIterable<Buffer>): AsyncGenerator<BundleEvent> {
  let pending: Buffer = Buffer.alloc(0);
  let current: { path: string; size: number; left: number; hash: ReturnType<typeof createHash> } | null = null;
  let manifest: { size: number; parts: Buffer[]; got: number } | null = null;
  const seen: ManifestFile[] = [];
  let finished: Manifest | null = null;
  const paths = new Set<string>();

  for await (const chunk of chunks) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      if (finished) {
        if (pending.length > 0) throw bad('data after the manifest');
        break;
      }
      if (current) {
        const take = Math.min(current.left, pending.length);
        if (take > 0) {
          const data = pending.subarray(0, take);
          current.hash.update(data);
          current.left -= take;
          pending = pending.subarray(take);
          yield { kind: 'data', data };
        }
        if (current.left > 0) break;
        const done = { path: current.path, size: current.size, sha256: current.hash.digest('hex') };
        seen.push(done);
        current = null;
        yield { kind: 'end-file', ...done };
        continue;
      }
      if (manifest) {
        const take = Math.min(manifest.size - manifest.got, pending.length);
        manifest.parts.push(pending.subarray(0, take));
        manifest.got += take;
        pending = pending.subarray(take);
        if (manifest.got < manifest.size) break;
        finished = checkManifest(Buffer.concat(manifest.parts), seen);
        manifest = null;
        yield { kind: 'manifest', manifest: finished };
        continue;
      }
      const nl = pending.indexOf(0x0a);
      if (nl < 0) {
        if (pending.length > MAX_LINE) throw bad('an entry header is too long');
        break;
      }
      let h: { type?: unknown; path?: unknown; size?: unknown };
      try {
        h = JSON.parse(pending.subarray(0, nl).toString('utf8')) as typeof h;
      } catch {
        throw bad('an entry header is not readable');
      }
      pending = pending.subarray(nl + 1);
      if (typeof h.size !== 'number' || !Number.isSafeInteger(h.size) || h.size < 0) throw bad('an entry has no valid size');
      if (h.type === 'file') {
        const rel = safePath(h.path);
        if (rel === null) throw bad(`an entry names a path a backup never holds: ${JSON.stringify(String(h.path)).slice(0, 80)}`);
        if (paths.has(rel)) throw bad(`${rel} appears twice`);
        paths.add(rel);
        current = { path: rel, size: h.size, left: h.size, hash: createHash('sha256') };
        yield { kind: 'file', path: rel, size: h.size };
      } else if (h.type === 'manifest') {
        if (h.size > MAX_MANIFEST) throw bad('the manifest is too large');
        manifest = { size: h.size, parts: [], got: 0 };
      } else {
        throw bad('an entry has an unknown type');
      }
    }
  }
  if (!finished) throw bad('the manifest is missing (the archive ends early)');
}

function checkManifest(data: Buffer, seen: ManifestFile[]): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(data.toString('utf8')) as Manifest;
  } catch {
    throw bad('the manifest is not readable');
  }
  if (m?.format !== 'gatehouse-backup-manifest' || m.version !== 1 || !Array.isArray(m.files)) throw bad('the manifest has an unknown format');
  const listed = new Map(m.files.map((f) => [f.path, f]));
  if (listed.size !== m.files.length || listed.size !== seen.length) throw bad(`the manifest lists ${m.files.length} file(s), the archive holds ${seen.length}`);
  for (const f of seen) {
    const want = listed.get(f.path);
    if (!want) throw bad(`${f.path} is not in the manifest`);
    if (want.size !== f.size || want.sha256 !== f.sha256) throw bad(`${f.path} does not match its SHA-256 in the manifest`);
  }
  if (!seen.some((f) => f.path === 'gatehouse.db')) throw bad('the database is missing');
  return m;
}
