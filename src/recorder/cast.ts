/**
 * asciicast v2 encoding (https://docs.asciinema.org/manual/asciicast/v2/): a header line, then one
 * `[seconds, code, data]` line per event, times absolute since the start with microsecond
 * precision. Output and input are decoded as UTF-8 streams, one decoder per direction, so a
 * character split across packets stays whole and invalid bytes become U+FFFD; a decoder's output
 * is always well-formed, so no lone surrogate ever reaches the JSON.
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

export class CastEncoder {
  private readonly out = new TextDecoder('utf-8');
  private readonly inp = new TextDecoder('utf-8');

  /**
   * `onlcr`: output of a channel without a pty is bare LF; the operator's terminal showed it as
   * CRLF (its ONLCR), so the recording does the same. The raw bytes' hashes live elsewhere.
   */
  constructor(private readonly startMs: number, private readonly now: () => number, private readonly onlcr = false) {}

  header(h: CastHeader): string {
    const head: Record<string, unknown> = { version: 2, width: h.width, height: h.height, timestamp: h.timestamp, title: h.title };
    if (h.command !== undefined) head.command = h.command;
    head.env = { TERM: h.term };
    return JSON.stringify(head) + '\n';
  }

  /** Seconds since the start, rounded to the microsecond. */
  private t(): number {
    return Math.round((this.now() - this.startMs) * 1000) / 1e6;
  }

  private event(code: string, data: string): string {
    return JSON.stringify([this.t(), code, data]) + '\n';
  }

  output(chunk: Buffer): string {
    const s = this.out.decode(chunk, { stream: true });
    return s ? this.event('o', this.onlcr ? s.replace(/\r?\n/g, '\r\n') : s) : '';
  }

  input(chunk: Buffer): string {
    const s = this.inp.decode(chunk, { stream: true });
    return s ? this.event('i', s) : '';
  }

  resize(cols: number, rows: number): string {
    return this.event('r', `${cols}x${rows}`);
  }

  marker(label: string): string {
    return this.event('m', label);
  }

  /** Flush both decoders: an incomplete trailing sequence comes out as U+FFFD. */
  finish(includeInput: boolean): string {
    const o = this.out.decode();
    const i = this.inp.decode();
    return (o ? this.event('o', o) : '') + (includeInput && i ? this.event('i', i) : '');
  }
}
