import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { RecordingStorage } from './types.js';

/**
 * The file of a recording under root, or null if the row's path would leave root: rows name paths
 * the recorder built, but nothing read from the database is trusted to stay inside the directory.
 */
export function localRecordingFile(root: string, rel: string): string | null {
  const file = path.resolve(root, rel);
  return file.startsWith(path.resolve(root) + path.sep) ? file : null;
}

function mustFile(root: string, rel: string): string {
  const f = localRecordingFile(root, rel);
  if (f === null) throw new Error(`recording path ${JSON.stringify(rel)} is outside the recordings directory`);
  return f;
}

function missing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Read a local recording file (helpers shared with the S3 storage, which reads its spool first). */
export const localFile = {
  stat(file: string): { size: number } | null {
    try {
      const st = fs.statSync(file);
      return st.isFile() ? { size: st.size } : null;
    } catch (err) {
      if (missing(err)) return null;
      throw err;
    }
  },
  read(file: string, maxBytes = Infinity): Buffer | null {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      if (missing(err)) return null;
      throw err;
    }
    try {
      const size = Math.min(fs.fstatSync(fd).size, maxBytes);
      const buf = Buffer.alloc(size);
      let done = 0;
      while (done < size) {
        const n = fs.readSync(fd, buf, done, size - done, done);
        if (n === 0) break;
        done += n;
      }
      return buf.subarray(0, done);
    } finally {
      fs.closeSync(fd);
    }
  },
  async digest(file: string): Promise<{ size: number; sha256: string } | null> {
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of fs.createReadStream(file)) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    } catch (err) {
      if (missing(err)) return null;
      throw err;
    }
    return { size, sha256: hash.digest('hex') };
  },
  stream(file: string): Promise<Readable | null> {
    return new Promise((resolve, reject) => {
      const s = fs.createReadStream(file);
      s.once('open', () => resolve(s));
      s.once('error', (err) => (missing(err) ? resolve(null) : reject(err)));
    });
  },
  remove(file: string): boolean {
    try {
      fs.unlinkSync(file);
      return true;
    } catch (err) {
      if (missing(err)) return false;
      throw err;
    }
  },
};

/** Today's behaviour and the default: recordings stay in the data directory's recordings/. */
export function createLocalStorage(root: string): RecordingStorage {
  return {
    kind: 'local',
    spool: root,
    location: root,
    spoolFile: (rel) => mustFile(root, rel),
    stat: async (rel) => { const f = localRecordingFile(root, rel); return f === null ? null : localFile.stat(f); },
    localStat: (rel) => { const f = localRecordingFile(root, rel); return f === null ? null : localFile.stat(f); },
    read: async (rel, maxBytes) => { const f = localRecordingFile(root, rel); return f === null ? null : localFile.read(f, maxBytes); },
    stream: async (rel) => { const f = localRecordingFile(root, rel); return f === null ? null : localFile.stream(f); },
    digest: async (rel) => { const f = localRecordingFile(root, rel); return f === null ? null : localFile.digest(f); },
    remove: async (rel) => { const f = localRecordingFile(root, rel); return f === null ? false : localFile.remove(f); },
    closed: () => undefined,
    resume: async () => 0,
    pending: () => 0,
    stop: async () => undefined,
  };
}

/** Callers that still hand a directory: the local storage on it. */
export function asStorage(s: RecordingStorage | string): RecordingStorage {
  return typeof s === 'string' ? createLocalStorage(s) : s;
}
