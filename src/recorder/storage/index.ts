import type { Config } from '../../config/schema.js';
import { silentLogger, type Logger } from '../../shared/logger.js';
import { createLocalStorage } from './local.js';
import { S3RecordingStorage, type S3Options } from './s3.js';
import type { RecordingStorage } from './types.js';

export type { RecordingStorage } from './types.js';
export { asStorage, createLocalStorage, localRecordingFile } from './local.js';
export { S3RecordingStorage } from './s3.js';

/**
 * The storage the config names: the data directory's recordings/ (the default), or an S3-compatible
 * bucket (`recording.storage.s3`) with recordings/ as the spool. The CLI builds one to read; the
 * server's also uploads (its log reports upload failures).
 */
export function createRecordingStorage(
  config: Pick<Config, 'recording'>, dataDir: { paths: { recordings: string } }, o: Partial<S3Options> & { log?: Logger } = {},
): RecordingStorage {
  const s3 = config.recording.storage?.s3;
  const root = dataDir.paths.recordings;
  if (!s3) return createLocalStorage(root);
  return new S3RecordingStorage(root, s3, { ...o, log: o.log ?? silentLogger() });
}
