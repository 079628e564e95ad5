import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../shared/logger.js';
import { silentLogger } from '../../shared/logger.js';
import { localRecordingFile } from './local.js';
import { S3RecordingStorage, spoolFiles, type S3Settings } from './s3.js';
import type { RecordingStorage } from './types.js';

/**
 * Copy a local recordings directory into an S3-compatible bucket (`gatehouse migrate --recordings
 * s3`): every file under it — recordings, their `.files/` content, anything the recorder keeps
 * beside them — under the same relative path, which is the object key below the prefix.
 *
 * The local directory is only read. Each file is linked (or copied) into a staging spool of its own
 * beside it, and the S3 storage's own upload takes it from there: the same multipart upload and the
 * same confirmation (size and ETag, else the bytes read back) before the staging copy goes. The
 * returned storage has that spool, empty once everything is confirmed, so what it reads comes from
 * the bucket: a check made through it checks the objects, not the local files.
 */
export interface CopiedRecordings {
  /** Reads the bucket (its spool is the staging one, empty once all is uploaded). */
  storage: RecordingStorage;
  files: number;
  bytes: number;
  /** Relative paths not confirmed in the bucket within the time given. */
  failed: string[];
  /** Stop the storage and remove the staging spool (the local directory stays as it was). */
  close(): Promise<void>;
}

export async function copyRecordingsToS3(o: {
  root: string; s3: S3Settings; timeoutMs: number; log?: Logger; concurrency?: number;
}): Promise<CopiedRecordings> {
  const root = path.resolve(o.root);
  const rels = fs.existsSync(root) ? spoolFiles(root, Number.MAX_SAFE_INTEGER) : [];
  // Beside the recordings directory: the same file system, so a hard link costs no space.
  const staging = fs.mkdtempSync(path.join(path.dirname(root), '.migrate-spool-'));
  const storage = new S3RecordingStorage(staging, o.s3, { log: o.log ?? silentLogger(), concurrency: o.concurrency ?? 4, retryMs: 500, maxRetryMs: 5_000 });
  const close = async () => {
    await storage.stop(0).catch(() => undefined);
    fs.rmSync(staging, { recursive: true, force: true });
  };
  const failed: string[] = [];
  let bytes = 0;
  try {
    for (const rel of rels) {
      const from = localRecordingFile(root, rel);
      let to: string;
      try {
        storage.key(rel); // a name no object key may carry fails here, not in a retry loop
        to = storage.spoolFile(rel);
      } catch {
        failed.push(rel);
        continue;
      }
      if (from === null) { failed.push(rel); continue; }
      fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o700 });
      try {
        fs.linkSync(from, to);
      } catch {
        fs.copyFileSync(from, to);
      }
      bytes += fs.statSync(to).size;
      storage.closed(rel);
    }
    await storage.drain(o.timeoutMs);
    // What is still in the staging spool was not confirmed in the bucket.
    for (const rel of spoolFiles(staging, Number.MAX_SAFE_INTEGER)) failed.push(rel);
    return { storage, files: rels.length, bytes, failed: failed.sort(), close };
  } catch (err) {
    await close();
    throw err;
  }
}
