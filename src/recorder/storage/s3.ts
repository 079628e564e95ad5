import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Upload } from '@aws-sdk/lib-storage';
import type { Logger } from '../../shared/logger.js';
import type { Store } from '../../store/types.js';
import { localFile, localRecordingFile } from './local.js';
import type { RecordingStorage } from './types.js';

export interface S3Settings {
  /** Unset: AWS S3 itself (the SDK picks the endpoint from the region). */
  endpoint?: string;
  bucket: string;
  region: string;
  /** Prepended to each recording's relative path ("gatehouse/" → gatehouse/2026/11/30/ID-0.cast). */
  prefix: string;
  /** Path-style URLs (http://host/bucket/key): MinIO, Ceph RGW, Garage and test servers need it. */
  forcePathStyle: boolean;
}

export interface S3Options {
  log: Logger;
  /** Multipart above this size (lib-storage's minimum is 5 MiB). */
  partSize?: number;
  /** First retry after a failed upload; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** Uploads at once. */
  concurrency?: number;
  /** Injected for tests (the S3 client is otherwise built from settings and the default credential chain). */
  client?: S3Client;
}

const MiB = 1024 * 1024;

/**
 * The SDK is loaded on first use: it takes about half a second to import, which every CLI command
 * (and a server with local storage) would otherwise pay for nothing.
 */
type Sdk = typeof import('@aws-sdk/client-s3') & { Upload: typeof import('@aws-sdk/lib-storage').Upload };
let loading: Promise<Sdk> | null = null;
function sdk(): Promise<Sdk> {
  loading ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]).then(([s3, lib]) => ({ ...s3, Upload: lib.Upload }));
  return loading;
}

/**
 * The S3 client. Credentials come only from the SDK's default chain (AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE and ~/.aws, web identity, the instance
 * role): the config file has no place for them. Checksums are computed only where S3 requires
 * them, since several S3-compatible stores refuse the SDK's default trailing checksums.
 */
export async function s3Client(s: S3Settings): Promise<S3Client> {
  const { S3Client } = await sdk();
  return new S3Client({
    region: s.region,
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    forcePathStyle: s.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
}

/** Recording paths are relative, plain: no absolute path, no `..`, nothing an object key could be bent with. */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export function objectKey(prefix: string, rel: string): string {
  const parts = rel.split(path.sep).join('/').split('/');
  if (parts.length > 8 || !parts.every((p) => SEGMENT.test(p))) throw new Error(`recording path ${JSON.stringify(rel)} cannot name an object`);
  const pre = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  return pre + parts.join('/');
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function notFound(err: unknown): boolean {
  const name = (err as { name?: string }).name;
  if (name === 'NoSuchBucket') return false;
  return name === 'NotFound' || name === 'NoSuchKey' || statusOf(err) === 404;
}

/** Only the error's name and message reach a log: never the request (its signature) or the client's settings. */
function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`.slice(0, 300);
  return String(err).slice(0, 300);
}

/** What an upload must match: the spool file's size, SHA-256, and the ETags S3 may give it (single PUT or multipart). */
async function fingerprint(file: string, partSize: number): Promise<{ size: number; sha256: string; etags: Set<string> }> {
  const sha = createHash('sha256');
  const whole = createHash('md5');
  const parts: Buffer[] = [];
  let part = createHash('md5');
  let inPart = 0;
  let size = 0;
  for await (const c of fs.createReadStream(file)) {
    let chunk = c as Buffer;
    sha.update(chunk);
    whole.update(chunk);
    size += chunk.length;
    while (chunk.length > 0) {
      const take = Math.min(chunk.length, partSize - inPart);
      part.update(chunk.subarray(0, take));
      inPart += take;
      chunk = chunk.subarray(take);
      if (inPart === partSize) { parts.push(part.digest()); part = createHash('md5'); inPart = 0; }
    }
  }
  if (inPart > 0 || parts.length === 0) parts.push(part.digest());
  const multipart = `${createHash('md5').update(Buffer.concat(parts)).digest('hex')}-${parts.length}`;
  return { size, sha256: sha.digest('hex'), etags: new Set([whole.digest('hex'), multipart]) };
}

export class S3RecordingStorage implements RecordingStorage {
  readonly kind = 's3' as const;
  readonly location: string;
  private clientP: Promise<S3Client> | null = null;
  private readonly injected: S3Client | undefined;
  private readonly log: Logger;
  private readonly partSize: number;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly concurrency: number;
  /** Recordings waiting for an upload (or for their next attempt), by relative path. */
  private readonly queued = new Set<string>();
  private readonly waiting: string[] = [];
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly attempts = new Map<string, number>();
  private readonly running = new Map<string, { upload: Upload | null; done: Promise<void> }>();
  private stopped = false;

  constructor(readonly spool: string, private readonly s: S3Settings, o: S3Options) {
    this.injected = o.client;
    this.log = o.log;
    this.partSize = Math.max(5 * MiB, o.partSize ?? 16 * MiB);
    this.retryMs = o.retryMs ?? 1_000;
    this.maxRetryMs = o.maxRetryMs ?? 5 * 60_000;
    this.concurrency = o.concurrency ?? 2;
    this.location = `s3://${s.bucket}/${s.prefix}`;
  }

  private client(): Promise<S3Client> {
    this.clientP ??= this.injected ? Promise.resolve(this.injected) : s3Client(this.s);
    return this.clientP;
  }

  private async headObject(key: string) {
    const m = await sdk();
    return (await this.client()).send(new m.HeadObjectCommand({ Bucket: this.s.bucket, Key: key }));
  }

  private async getObject(key: string, range?: string) {
    const m = await sdk();
    return (await this.client()).send(new m.GetObjectCommand({ Bucket: this.s.bucket, Key: key, ...(range ? { Range: range } : {}) }));
  }

  private async deleteObject(key: string) {
    const m = await sdk();
    return (await this.client()).send(new m.DeleteObjectCommand({ Bucket: this.s.bucket, Key: key }));
  }

  key(rel: string): string {
    return objectKey(this.s.prefix, rel);
  }

  spoolFile(rel: string): string {
    const f = localRecordingFile(this.spool, rel);
    if (f === null) throw new Error(`recording path ${JSON.stringify(rel)} is outside the spool`);
    return f;
  }

  /** The spool copy, while there is one (not uploaded yet, or an upload that keeps failing), else null. */
  private spooled(rel: string): string | null {
    const f = localRecordingFile(this.spool, rel);
    return f !== null && localFile.stat(f) !== null ? f : null;
  }

  async stat(rel: string): Promise<{ size: number } | null> {
    const f = this.spooled(rel);
    if (f) return localFile.stat(f);
    try {
      const h = await this.headObject(this.key(rel));
      return { size: h.ContentLength ?? 0 };
    } catch (err) {
      if (notFound(err)) return null;
      throw err;
    }
  }

  /** The spool copy's size while there is one; else only the bucket knows (undefined). */
  localStat(rel: string): { size: number } | undefined {
    const f = localRecordingFile(this.spool, rel);
    return (f !== null ? localFile.stat(f) : null) ?? undefined;
  }

  async stream(rel: string): Promise<Readable | null> {
    const f = this.spooled(rel);
    if (f) return localFile.stream(f);
    return this.get(rel);
  }

  private async get(rel: string, maxBytes?: number): Promise<Readable | null> {
    try {
      const r = await this.getObject(this.key(rel), maxBytes !== undefined && Number.isFinite(maxBytes) ? `bytes=0-${Math.max(0, maxBytes - 1)}` : undefined);
      return r.Body as Readable;
    } catch (err) {
      if (notFound(err)) return null;
      // An empty object asked for with a range: there is nothing to read, but it exists.
      if (statusOf(err) === 416) return (await import('node:stream')).Readable.from([]);
      throw err;
    }
  }

  async read(rel: string, maxBytes?: number): Promise<Buffer | null> {
    const f = this.spooled(rel);
    if (f) return localFile.read(f, maxBytes);
    const body = await this.get(rel, maxBytes);
    if (!body) return null;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of body) {
      chunks.push(c as Buffer);
      n += (c as Buffer).length;
      if (maxBytes !== undefined && n >= maxBytes) { body.destroy(); break; }
    }
    const all = Buffer.concat(chunks);
    return maxBytes !== undefined ? all.subarray(0, maxBytes) : all;
  }

  async digest(rel: string): Promise<{ size: number; sha256: string } | null> {
    const f = this.spooled(rel);
    if (f) return localFile.digest(f);
    const body = await this.get(rel);
    if (!body) return null;
    const hash = createHash('sha256');
    let size = 0;
    for await (const c of body) { hash.update(c as Buffer); size += (c as Buffer).length; }
    return { size, sha256: hash.digest('hex') };
  }

  async remove(rel: string): Promise<boolean> {
    // Not while it uploads: the upload would put it back.
    this.cancel(rel);
    await this.running.get(rel)?.done;
    const f = localRecordingFile(this.spool, rel);
    let removed = f !== null && localFile.remove(f);
    let exists = false;
    try {
      await this.headObject(this.key(rel));
      exists = true;
    } catch (err) {
      if (!notFound(err)) throw err;
    }
    if (exists) {
      await this.deleteObject(this.key(rel));
      removed = true;
    }
    return removed;
  }

  closed(rel: string): void {
    if (this.stopped || this.queued.has(rel)) return;
    this.queued.add(rel);
    this.waiting.push(rel);
    this.pump();
  }

  async resume(store: Store): Promise<number> {
    let n = 0;
    for (const rel of spoolFiles(this.spool)) {
      // A recording (ID-CHANNEL.cast), or a file content captured beside it (ID-CHANNEL.files/N):
      // either goes once the recording's row is closed.
      const parent = path.basename(path.dirname(rel));
      const cast = /\.files$/.test(parent) ? path.join(path.dirname(path.dirname(rel)), parent.replace(/\.files$/, '.cast')) : rel;
      const m = /^(.+)-(\d+)\.cast$/.exec(path.basename(cast));
      const row = m ? (await store.recordings.list(m[1]!)).find((r) => r.channel === Number(m[2]) && r.path === cast) : undefined;
      if (!row) {
        this.log.warn({ file: rel }, 'a spool file has no recording row: left in the spool');
        continue;
      }
      // Still being written (by this node's next run or, on a shared directory, another node).
      if (row.state === 'open' || row.deletedAt != null) continue;
      this.closed(rel);
      n++;
    }
    if (n > 0) this.log.info({ files: n, to: this.location }, 'uploading recordings left in the spool');
    return n;
  }

  /** Recordings in the spool or under upload (tests and metrics). */
  pending(): number {
    return this.queued.size;
  }

  /**
   * Resolves true once nothing is queued (every upload confirmed), false after timeoutMs. With
   * resume(), this moves a local recordings directory into the bucket (`migrate --recordings s3`):
   * the rows keep their relative paths, which are the object keys under the prefix.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.queued.size > 0) {
      if (Date.now() >= until) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  async stop(ms: number): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.waiting.length = 0;
    const all = Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([all.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), ms); })]);
    clearTimeout(timer);
    if (late) {
      for (const r of this.running.values()) await r.upload?.abort().catch(() => undefined);
      await all;
    }
    if (this.clientP) (await this.clientP).destroy();
  }

  private cancel(rel: string): void {
    const t = this.timers.get(rel);
    if (t) clearTimeout(t);
    this.timers.delete(rel);
    const i = this.waiting.indexOf(rel);
    if (i >= 0) this.waiting.splice(i, 1);
    if (!this.running.has(rel)) this.queued.delete(rel);
  }

  private pump(): void {
    while (!this.stopped && this.running.size < this.concurrency && this.waiting.length > 0) {
      const rel = this.waiting.shift()!;
      const slot: { upload: Upload | null; done: Promise<void> } = { upload: null, done: Promise.resolve() };
      slot.done = this.attempt(rel, slot).finally(() => {
        this.running.delete(rel);
        this.pump();
      });
      this.running.set(rel, slot);
    }
  }

  private async attempt(rel: string, slot: { upload: Upload | null }): Promise<void> {
    const key = this.key(rel);
    try {
      const file = this.spoolFile(rel);
      if (localFile.stat(file) === null) {
        // Already uploaded and removed (a second start, or remove() meanwhile).
        this.queued.delete(rel);
        return;
      }
      const want = await fingerprint(file, this.partSize);
      const { Upload } = await sdk();
      slot.upload = new Upload({
        client: await this.client(), partSize: this.partSize, queueSize: 2, leavePartsOnError: false,
        params: { Bucket: this.s.bucket, Key: key, Body: fs.createReadStream(file), ContentType: 'application/x-asciicast', Metadata: { sha256: want.sha256 } },
      });
      await slot.upload.done();
      await this.confirm(key, want);
      // Confirmed in the bucket: only now does the spool copy go.
      localFile.remove(file);
      this.queued.delete(rel);
      this.attempts.delete(rel);
      this.log.info({ file: rel, key, size: want.size, multipart: slot.upload.uploadId !== undefined }, 'recording uploaded to object storage');
    } catch (err) {
      const n = (this.attempts.get(rel) ?? 0) + 1;
      this.attempts.set(rel, n);
      if (this.stopped) {
        this.queued.delete(rel);
        this.log.warn({ file: rel, key, err: describeError(err) }, 'recording upload stopped: it stays in the spool and is uploaded at the next start');
        return;
      }
      const delay = Math.min(this.maxRetryMs, this.retryMs * 2 ** Math.min(n - 1, 20));
      this.log.error({ file: rel, key, attempt: n, retryInMs: delay, err: describeError(err) }, 'recording upload failed: it stays in the spool and is retried');
      const t = setTimeout(() => {
        this.timers.delete(rel);
        this.waiting.push(rel);
        this.pump();
      }, delay);
      t.unref();
      this.timers.set(rel, t);
    }
  }

  /** The object is there with the spool file's size and content (its ETag, else its bytes read back). */
  private async confirm(key: string, want: { size: number; sha256: string; etags: Set<string> }): Promise<void> {
    const h = await this.headObject(key);
    if (h.ContentLength !== want.size) throw new Error(`uploaded object has ${h.ContentLength} bytes, the spool file ${want.size}`);
    const etag = (h.ETag ?? '').replace(/"/g, '');
    if (want.etags.has(etag)) return;
    // An ETag that is not an MD5 (SSE-KMS, some S3-compatible stores): read the object back.
    const body = (await this.getObject(key)).Body as Readable;
    const hash = createHash('sha256');
    for await (const c of body) hash.update(c as Buffer);
    if (hash.digest('hex') !== want.sha256) throw new Error('uploaded object differs from the spool file');
  }
}

/** Relative paths of the files in the spool (bounded: a spool is what is waiting for upload). */
export function spoolFiles(root: string, limit = 100_000): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (out.length >= limit) return;
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.isFile()) out.push(path.relative(root, full));
    }
  };
  walk(root);
  return out.sort();
}
