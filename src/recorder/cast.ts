import { JsonUtf8Stream } from './jsonutf8.js';

/**
 * asciicast v2 encoding (https://docs.asciinema.org/manual/asciicast/v2/): a header line, then one
 * `[seconds, code, data]` line per event, times absolute since the start with microsecond
 * precision. Output and input are decoded as UTF-8 streams, one decoder per direction, so a
 * character split across packets stays whole and invalid bytes become U+FFFD; a decoder's output
 * is always well-formed, so no lone surrogate ever reaches the JSON. Every method returns the
 * bytes of complete lines (empty when there is nothing to record), ready for the file.
 */
export interface CastHeader {
  width: number;
  height: number;
  /** Unix seconds. */
  timestamp: number;
  title: string;
  command?: string;
  term: string;
}

const EMPTY = Buffer.alloc(0);
const TAIL = Buffer.from('"]\n', 'latin1');

export class CastEncoder {
  private readonly out: JsonUtf8Stream;
  private readonly inp = new JsonUtf8Stream(false);
  /** Reused for every event: a chunk is encoded in place, then copied out once at its exact size. */
  private scratch = Buffer.allocUnsafe(JsonUtf8Stream.maxOut(32 * 1024) + 64);

  /**
   * `onlcr`: output of a channel without a pty is bare LF; the operator's terminal showed it as
   * CRLF (its ONLCR), so the recording does the same. The raw bytes' hashes live elsewhere.
   */
  constructor(private readonly startMs: number, private readonly now: () => number, onlcr = false) {
    this.out = new JsonUtf8Stream(onlcr);
  }

  header(h: CastHeader): Buffer {
    const head: Record<string, unknown> = { version: 2, width: h.width, height: h.height, timestamp: h.timestamp, title: h.title };
    if (h.command !== undefined) head.command = h.command;
    head.env = { TERM: h.term };
    return Buffer.from(JSON.stringify(head) + '\n');
  }

  /** Seconds since the start, rounded to the microsecond. */
  private t(): number {
    return Math.round((this.now() - this.startMs) * 1000) / 1e6;
  }

  private event(code: string, data: string): Buffer {
    return Buffer.from(JSON.stringify([this.t(), code, data]) + '\n');
  }

  /** One event from raw bytes (and/or the end of the stream); empty if no character came out. */
  private stream(code: 'o' | 'i', dec: JsonUtf8Stream, chunk: Buffer | null): Buffer {
    const need = JsonUtf8Stream.maxOut(chunk?.length ?? 0) + 64;
    if (this.scratch.length < need) this.scratch = Buffer.allocUnsafe(need);
    const buf = this.scratch;
    // The prefix is written first and dropped again if the chunk held no complete character.
    const start = buf.write(`[${this.t()},"${code}","`, 0, 'latin1');
    let o = chunk ? dec.encode(chunk, buf, start) : dec.flush(buf, start);
    if (o === start) return EMPTY;
    o += TAIL.copy(buf, o);
    return Buffer.from(buf.subarray(0, o));
  }

  output(chunk: Buffer): Buffer {
    return this.stream('o', this.out, chunk);
  }

  input(chunk: Buffer): Buffer {
    return this.stream('i', this.inp, chunk);
  }

  resize(cols: number, rows: number): Buffer {
    return this.event('r', `${cols}x${rows}`);
  }

  marker(label: string): Buffer {
    return this.event('m', label);
  }

  /** Flush both decoders: an incomplete trailing sequence comes out as U+FFFD. */
  finish(includeInput: boolean): Buffer {
    const o = this.stream('o', this.out, null);
    const i = this.stream('i', this.inp, null);
    return includeInput && i.length ? Buffer.concat([o, i]) : o;
  }
}
