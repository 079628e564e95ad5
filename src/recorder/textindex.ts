import { StringDecoder } from 'node:string_decoder';
import { stripVTControlCharacters } from 'node:util';
import type { Store } from '../store/types.js';
import type { RecordingStorage } from './storage/types.js';

/**
 * What a recording printed, made searchable: output events are concatenated per chunk of about a
 * kilobyte (escape sequences are split across events, so they are stripped from the joined text),
 * each chunk keeping the time it started so a search hit links to that moment.
 */
const CHUNK = 1024;
/** Only the first 32 MiB of a recording are indexed: enough for any terminal session people search. */
const MAX_INDEXED = 32 * 1024 * 1024;

export function textChunks(castText: string): { t: number; text: string }[] {
  const chunks: { t: number; text: string }[] = [];
  let cur = '';
  let t0 = 0;
  const flush = () => {
    const text = plain(cur);
    if (text.trim()) chunks.push({ t: t0, text });
    cur = '';
  };
  for (const line of castText.split('\n').slice(1)) {
    if (!line.startsWith('[')) continue;
    const [t, code, data] = JSON.parse(line) as [number, string, string];
    if (code !== 'o') continue;
    if (cur === '') t0 = t;
    cur += data;
    if (cur.length >= CHUNK) flush();
  }
  flush();
  return chunks;
}

const plain = (s: string) => stripVTControlCharacters(s).replace(/\r/g, '');

/**
 * Index a closed recording: its exact text replaces whatever was indexed in steps while it was live
 * (a step may have cut an escape sequence or a word in two; the file has them whole).
 */
export async function indexRecording(store: Store, storage: RecordingStorage, rel: string, sessionId: string, channel: number): Promise<void> {
  const buf = await storage.read(rel, MAX_INDEXED);
  if (buf === null) throw new Error(`recording ${rel} is missing`);
  const text = buf.subarray(0, buf.lastIndexOf(0x0a) + 1).toString('utf8');
  await store.search.reindex(sessionId, channel, textChunks(text));
}

/**
 * A live channel's output, indexed in steps (every recording.liveIndexEvery) so that a search finds
 * a session while it runs. The steps are a preview: at close, indexRecording replaces them.
 */
export class LiveIndex {
  private cur = '';
  private t0 = 0;
  private seen = 0;
  private readonly decoder = new StringDecoder('utf8');
  private pending: { t: number; text: string }[] = [];
  private writing: Promise<void> = Promise.resolve();
  private done = false;

  constructor(private readonly store: Store, private readonly sessionId: string, private readonly channel: number, private readonly onError: (err: unknown) => void) {}

  /** Output at `t` seconds into the recording. */
  add(t: number, d: Buffer): void {
    if (this.done || this.seen >= MAX_INDEXED) return;
    this.seen += d.length;
    const s = this.decoder.write(d);
    if (!s) return;
    if (this.cur === '') this.t0 = t;
    this.cur += s;
    if (this.cur.length >= CHUNK) this.cut();
  }

  /** Write what arrived since the last step; steps are written one after the other. */
  flush(): void {
    if (this.done) return;
    if (this.cur) this.cut();
    if (this.pending.length === 0) return;
    const chunks = this.pending;
    this.pending = [];
    this.writing = this.writing.then(() => this.store.search.index(this.sessionId, this.channel, chunks)).catch(this.onError);
  }

  get hasPending(): boolean {
    return this.cur !== '' || this.pending.length > 0;
  }

  /** No more steps; resolves when the last one is written (indexRecording then replaces them all). */
  stop(): Promise<void> {
    this.done = true;
    return this.writing;
  }

  private cut(): void {
    const text = plain(this.cur);
    if (text.trim()) this.pending.push({ t: this.t0, text });
    this.cur = '';
  }
}

/**
 * One timer for every live channel of a server: each tick writes the channels that printed something.
 * The writes of a tick are spread over the event loop, one channel per turn: on SQLite each is a
 * synchronous transaction, and fifty typing sessions written back to back held the relay (every
 * keystroke's echo) for tens of milliseconds every tick (bench: echo p99 11 → 47 ms at 200/50).
 */
export class LiveIndexer {
  private readonly live = new Set<LiveIndex>();
  private timer: NodeJS.Timeout | null = null;
  /** A tick still handing out its writes: the next one waits (a slow store never stacks rounds). */
  private spreading = false;

  constructor(private readonly everyMs: number, private readonly yieldTurn: () => Promise<void> = () => new Promise((r) => setImmediate(r))) {}

  add(x: LiveIndex): void {
    this.live.add(x);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.everyMs);
      this.timer.unref();
    }
  }

  /** One round: every channel with new text gets its step, one per event-loop turn. */
  async tick(): Promise<void> {
    if (this.spreading) return;
    const due = [...this.live].filter((l) => l.hasPending);
    if (due.length === 0) return;
    this.spreading = true;
    try {
      for (const [i, l] of due.entries()) {
        if (i > 0) await this.yieldTurn();
        l.flush();
      }
    } finally {
      this.spreading = false;
    }
  }

  remove(x: LiveIndex): void {
    this.live.delete(x);
    if (this.live.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
