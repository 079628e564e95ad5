import type { Readable } from 'node:stream';
import type { Store } from '../../store/types.js';

/**
 * Where closed recordings are kept, and the one way every reader reaches them (verify, play,
 * export, the web replay, search indexing, retention, backup). A recording is named by the
 * relative path its row keeps (`YYYY/MM/DD/SESSION-CHANNEL.cast`), never by a path built elsewhere.
 *
 * Live recordings are always written to a local directory (the spool) with the crash guarantees of
 * recorder/file.ts; the local storage keeps them there, the S3 storage uploads each one once its
 * row is closed and chained, and removes the spool copy only once the object is confirmed.
 */
export interface RecordingStorage {
  readonly kind: 'local' | 's3';
  /** The local directory live recordings are written to (with S3: the spool). */
  readonly spool: string;
  /** Where closed recordings end up, for people: a directory, or s3://bucket/prefix. */
  readonly location: string;
  /** The spool file of a recording (the recorder and crash recovery write there). Throws on a path that climbs out. */
  spoolFile(rel: string): string;
  /** Size of the stored recording, or null when there is none. */
  stat(rel: string): Promise<{ size: number } | null>;
  /**
   * Size of the recording when this machine can tell without asking a remote store (the local file,
   * or a spool copy not yet uploaded); null when the local storage has none; undefined when only the
   * remote store could tell. Lists use it: one request per row per page view is too many.
   */
  localStat?(rel: string): { size: number } | null | undefined;
  /** The first maxBytes (default: all) of the recording, or null when there is none. */
  read(rel: string, maxBytes?: number): Promise<Buffer | null>;
  /** The recording as a stream (the web replay), or null when there is none. */
  stream(rel: string): Promise<Readable | null>;
  /** Size and SHA-256 of the stored bytes (what verify compares with the signed row). */
  digest(rel: string): Promise<{ size: number; sha256: string } | null>;
  /** Delete the recording wherever it is kept; true when something was deleted. */
  remove(rel: string): Promise<boolean>;
  /** A recording's row is closed and chained: keep it for good (S3: upload in the background, then drop the spool copy). */
  closed(rel: string): void;
  /** At start, after crash recovery: hand every spool file whose recording is closed to closed(). Returns how many. */
  resume(store: Store): Promise<number>;
  /** Recordings closed but not yet confirmed in their final place (S3: the upload queue, failing ones included). */
  pending(): number;
  /** Uploads still running get up to ms to finish; what is left stays in the spool for the next start. */
  stop(ms: number): Promise<void>;
}
