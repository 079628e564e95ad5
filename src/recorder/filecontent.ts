import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Sink, type Offload } from '../shared/offload.js';
import type { Logger } from '../shared/logger.js';
import type { RecordingRecord } from '../store/types.js';
import type { RecordingStorage } from './storage/types.js';

/**
 * Optional content capture (`recording.fileContent.maxBytes`, 0 = off): the content of each file a
 * transfer channel moved whole (SFTP read from 0 to EOF or written from 0 with truncate, an scp -O
 * C record), up to maxBytes, stored beside the recording. A file over maxBytes is not stored at all
 * (`too large`), and one whose hash is `partial` is not stored either (`not whole`): a stored file
 * is always the whole file, never a truncated one passing for it.
 *
 * Binding to the recordings chain: for each stored file gatehouse writes one marker line into the
 * channel's recording (`m` event, CONTENT_MARK + JSON naming the content file, its size and
 * SHA-256). The recording's size and SHA-256 are chained and signed when it closes, so the content
 * files are covered by the same chain; `verify` checks each marked content file against its
 * marker (contentChecks), and a download re-checks it before handing it out. A transfer channel's
 * recording holds only gatehouse's own markers (its data stream is never recorded), so an operator
 * cannot forge one.
 */
export const CONTENT_MARK = 'gatehouse file content: ';

export interface ContentMarker {
  /** The content file, relative to the recordings root (the storage's name for it). */
  file: string;
  direction: string;
  path: string;
  size: number;
  sha256: string;
}

export type ContentState = 'stored' | 'too large' | 'not whole' | 'not recorded' | 'failed';

export interface FileContentDeps {
  maxBytes: number;
  storage: RecordingStorage;
  offload: Offload;
  log: Logger;
  now?: () => number;
}

/** The content files of one channel. `mark` writes a marker into the channel's recording (null: unrecorded). */
export class ChannelContents {
  private n = 0;
  private readonly dir: string;

  constructor(private readonly deps: FileContentDeps, readonly sessionId: string, readonly channel: number, private readonly mark: ((text: string) => void) | null) {
    if (!/^[a-z0-9-]{1,64}$/.test(sessionId) || !Number.isSafeInteger(channel) || channel < 0) throw new Error(`invalid content id ${sessionId}/${channel}`);
    const d = new Date((deps.now ?? Date.now)());
    // Built from ids and the date only, never from a path the operator sent.
    this.dir = path.posix.join(String(d.getUTCFullYear()), String(d.getUTCMonth() + 1).padStart(2, '0'), String(d.getUTCDate()).padStart(2, '0'), `${sessionId}-${channel}.files`);
  }

  /** A capture for one file; feed it the content in order (what the file's hash sees). */
  capture(): ContentCapture {
    return new ContentCapture(this.deps, () => path.posix.join(this.dir, String(++this.n)), this.mark);
  }
}

export class ContentCapture {
  private sink: Sink | null = null;
  private rel: string | null = null;
  private bytes = 0;
  private state: 'open' | 'too large' | 'failed' | 'done' = 'open';

  constructor(private readonly deps: FileContentDeps, private readonly name: () => string, private readonly mark: ((text: string) => void) | null) {}

  /** The next bytes of the content, in order. */
  write(data: Buffer): void {
    if (this.state !== 'open' || data.length === 0) return;
    if (this.bytes + data.length > this.deps.maxBytes) return this.drop('too large');
    if (!this.ensure()) return;
    this.sink!.write(data);
    this.bytes += data.length;
  }

  /**
   * The file closed with this result: store it when it is whole and within maxBytes, else drop
   * what was written. Returns what became of the content.
   */
  finish(f: { direction: string; path: string; size: number; sha256: string }): ContentState {
    if (this.state === 'too large' || this.state === 'failed') return this.state;
    if (this.state === 'done') return 'failed';
    if (f.sha256 === 'partial' || !/^[0-9a-f]{64}$/.test(f.sha256) || f.size !== this.bytes) { this.drop('failed'); return 'not whole'; }
    if (f.size > this.deps.maxBytes) { this.drop('too large'); return 'too large'; }
    if (!this.mark) { this.drop('failed'); return 'not recorded'; }
    if (!this.ensure()) return 'failed';
    this.state = 'done';
    const rel = this.rel!;
    const marker: ContentMarker = { file: rel, direction: f.direction, path: f.path, size: f.size, sha256: f.sha256 };
    this.mark(CONTENT_MARK + JSON.stringify(marker));
    // The file is complete once the writing thread has it on disk; only then may the storage take it.
    void this.sink!.close(true).then((r) => {
      if (r.error || r.sha256 !== f.sha256) throw r.error ?? new Error('the stored content does not hash to the file');
      this.deps.storage.closed(rel);
    }).catch((err: unknown) => this.deps.log.error({ err, file: rel }, 'storing a file content failed'));
    return 'stored';
  }

  /** The channel ended with the file still open, or the audit stopped: nothing is kept. */
  abort(): void {
    if (this.state === 'open') this.drop('failed');
  }

  private ensure(): boolean {
    if (this.sink) return true;
    try {
      this.rel = this.name();
      const file = this.deps.storage.spoolFile(this.rel);
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      const fd = fs.openSync(file, 'wx', 0o600);
      this.sink = new Sink(this.deps.offload, fd, (err) => { this.deps.log.error({ err, file: this.rel }, 'writing a file content failed'); });
      return true;
    } catch (err) {
      this.deps.log.error({ err, file: this.rel }, 'a file content cannot be stored');
      this.state = 'failed';
      return false;
    }
  }

  private drop(state: 'too large' | 'failed'): void {
    this.state = state;
    const sink = this.sink;
    const rel = this.rel;
    this.sink = null;
    if (!sink || !rel) return;
    void sink.close(false).then(() => fs.promises.rm(this.deps.storage.spoolFile(rel), { force: true }))
      .catch((err: unknown) => this.deps.log.warn({ err, file: rel }, 'removing a dropped file content failed'));
  }
}

/**
 * The content markers of a transfer recording's text (asciicast lines). Only markers naming a file of
 * this recording's own folder (`SESSION-CHANNEL.files/N` beside `castRel`) count: whatever text ends
 * up in a recording, it can never point verify, a download or retention at another file.
 */
export function contentMarkers(cast: Buffer, castRel: string): ContentMarker[] {
  const out: ContentMarker[] = [];
  if (!castRel.endsWith('.cast')) return out;
  const own = `${castRel.slice(0, -'.cast'.length)}.files/`;
  for (const line of cast.toString('utf8').split('\n')) {
    if (!line.includes('gatehouse file content')) continue;
    try {
      const ev = JSON.parse(line) as unknown;
      if (!Array.isArray(ev) || ev[1] !== 'm' || typeof ev[2] !== 'string' || !ev[2].startsWith(CONTENT_MARK)) continue;
      const m = JSON.parse(ev[2].slice(CONTENT_MARK.length)) as Partial<ContentMarker>;
      const ownFile = typeof m.file === 'string' && m.file.startsWith(own) && /^\d+$/.test(m.file.slice(own.length));
      if (ownFile && typeof m.path === 'string' && typeof m.direction === 'string' && Number.isSafeInteger(m.size) && typeof m.sha256 === 'string') {
        out.push(m as ContentMarker);
      }
    } catch { /* not a marker */ }
  }
  return out;
}

export interface ContentCheck {
  sessionId: string;
  channel: number;
  file: string;
  state: RecordingRecord['state'];
  verdict: 'intact' | 'modified' | 'missing';
}

/**
 * verify: every content file named by an intact transfer recording, against its marker. (A
 * recording that is not intact is reported as such already: its markers are not trusted.)
 */
export async function contentChecks(storage: RecordingStorage, recs: RecordingRecord[], intact: (r: RecordingRecord) => boolean): Promise<ContentCheck[]> {
  const out: ContentCheck[] = [];
  for (const r of recs) {
    if (r.kind !== 'transfer' || !intact(r)) continue;
    const cast = await storage.read(r.path);
    if (!cast) continue;
    for (const m of contentMarkers(cast, r.path)) {
      const d = await storage.digest(m.file).catch(() => null);
      const verdict = d === null ? 'missing' : d.size === m.size && d.sha256 === m.sha256 ? 'intact' : 'modified';
      out.push({ sessionId: r.sessionId, channel: r.channel, file: m.file, state: r.state, verdict });
    }
  }
  return out;
}

/**
 * The stored content of a session's file (as the files table lists it), re-checked against the
 * marker in its intact recording; what an auditor downloads.
 */
export async function readFileContent(
  storage: RecordingStorage, recs: RecordingRecord[], f: { channel: number; direction: string; path: string; sha256: string },
): Promise<{ content: Buffer; marker: ContentMarker } | { error: string }> {
  const r = recs.find((x) => x.channel === f.channel);
  if (!r || r.state === 'open') return { error: 'the channel\'s recording is not closed' };
  const cast = await storage.read(r.path);
  if (!cast) return { error: 'the channel\'s recording is missing' };
  const d = await storage.digest(r.path);
  if (!d || d.sha256 !== r.sha256 || d.size !== r.size) return { error: 'the channel\'s recording is MODIFIED: its content markers are not trusted' };
  // The same SHA-256 is the same content, so any marker with it is this file's.
  const m = contentMarkers(cast, r.path).find((x) => x.direction === f.direction && x.path === f.path && x.sha256 === f.sha256);
  if (!m) return { error: 'no content stored for this file (capture off, too large, or not whole)' };
  const content = await storage.read(m.file);
  if (!content) return { error: 'the content file is MISSING' };
  if (content.length !== m.size || createHash('sha256').update(content).digest('hex') !== m.sha256) return { error: 'the content file is MODIFIED' };
  return { content, marker: m };
}

/**
 * Which of a session's files (as the files table lists them) have stored content, by their index:
 * the markers of its transfer recordings, matched like readFileContent (for the session page's links).
 */
export async function filesWithContent(
  storage: RecordingStorage, recs: RecordingRecord[], files: { channel: number; direction: string; path: string; sha256: string }[],
  cache?: MarkerCache,
): Promise<Set<number>> {
  const byChannel = new Map<number, ContentMarker[]>();
  for (const r of recs) {
    if (r.kind !== 'transfer' || r.state === 'open') continue;
    const known = cache?.get(r);
    if (known) { byChannel.set(r.channel, known); continue; }
    const cast = await storage.read(r.path).catch(() => null);
    if (!cast) continue;
    const markers = contentMarkers(cast, r.path);
    cache?.set(r, markers);
    byChannel.set(r.channel, markers);
  }
  const out = new Set<number>();
  files.forEach((f, i) => {
    if (byChannel.get(f.channel)?.some((m) => m.direction === f.direction && m.path === f.path && m.sha256 === f.sha256)) out.add(i);
  });
  return out;
}

/**
 * The content markers of closed transfer recordings, so a session page does not read (with S3:
 * download) every transfer recording of the session on each view. A closed recording never changes:
 * it is keyed by its row's path, size and SHA-256, so a recording whose row changed is read again.
 * The download itself (readFileContent) always re-checks the recording and the content.
 */
export class MarkerCache {
  private readonly entries = new Map<string, ContentMarker[]>();
  constructor(private readonly max = 1000) {}

  private key(r: RecordingRecord): string | null {
    return r.state === 'open' || r.sha256 === null || r.size === null ? null : `${r.path}\0${r.size}\0${r.sha256}`;
  }

  get(r: RecordingRecord): ContentMarker[] | undefined {
    const k = this.key(r);
    if (k === null) return undefined;
    const v = this.entries.get(k);
    if (v) { this.entries.delete(k); this.entries.set(k, v); }
    return v;
  }

  set(r: RecordingRecord, markers: ContentMarker[]): void {
    const k = this.key(r);
    if (k === null) return;
    this.entries.set(k, markers);
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }
}

/**
 * Retention: the content files a transfer recording marks, removed before the recording itself (a
 * crash in between leaves the recording, whose markers still name what to remove next time).
 * A failed read or removal throws (the storage answers null / false for what is already gone): the
 * caller must then keep the recording and its row for the next sweep, or the contents are orphaned.
 */
export async function removeContents(storage: RecordingStorage, rec: { path: string; kind: string }): Promise<number> {
  // Only transfer recordings carry content (and they are small: markers, never a terminal's output).
  if (rec.kind !== 'transfer' || !rec.path.endsWith('.cast')) return 0;
  const cast = await storage.read(rec.path);
  if (!cast) return 0;
  let n = 0;
  for (const m of contentMarkers(cast, rec.path)) if (await storage.remove(m.file)) n++;
  return n;
}
