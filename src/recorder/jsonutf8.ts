/**
 * Raw terminal bytes → the UTF-8 bytes of a JSON string body, in one pass and without building a
 * JS string. It gives exactly what `JSON.stringify(new TextDecoder('utf-8', { ignoreBOM: true })
 * .decode(bytes, { stream: true }))` gives (without the quotes), which is what asciicast needs:
 *  - UTF-8 is decoded as a stream by the WHATWG rules: a character split across chunks stays
 *    whole, every invalid or truncated sequence becomes U+FFFD (EF BF BD) exactly where
 *    TextDecoder would put one, so no lone surrogate can ever reach the file;
 *  - `"`, `\` and C0 controls are escaped as JSON.stringify escapes them;
 *  - with `onlcr`, a bare LF is written as CR LF (what a terminal with ONLCR showed), also when
 *    the CR and the LF arrive in different chunks.
 * Why not TextDecoder + JSON.stringify + Buffer.from: on the relay's hot path that is three
 * passes and two string copies per chunk, 5–10× slower on binary output (measured in
 * BENCHMARKS.md), and the result is wanted as bytes anyway.
 */

/**
 * Per ASCII byte: how many bytes it becomes (1 = itself) and, at ESC[b * 6], its JSON escape. Bytes
 * from 0x80 have length 0 here: they go through the UTF-8 decoder.
 */
const ESC_LEN = new Uint8Array(256).fill(1, 0, 128);
const ESC = new Uint8Array(128 * 6);
{
  const HEX = '0123456789abcdef';
  const SHORT: Record<number, string> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' };
  for (let b = 0; b < 128; b++) {
    if (b >= 0x20 && b !== 0x22 && b !== 0x5c) continue;
    const e = SHORT[b] ?? `\\u00${HEX[b >> 4]}${HEX[b & 15]}`;
    ESC_LEN[b] = e.length;
    for (let k = 0; k < e.length; k++) ESC[b * 6 + k] = e.charCodeAt(k);
  }
}
const LF = 0x0a;
const CR = 0x0d;

export class JsonUtf8Stream {
  // WHATWG UTF-8 decoder state, plus the bytes of the sequence in progress (copied out whole).
  private need = 0;
  private seen = 0;
  private lower = 0x80;
  private upper = 0xbf;
  private readonly part = new Uint8Array(4);
  private prevCR = false;

  constructor(private readonly onlcr = false) {}

  /** Most bytes encode() can write for an input of n bytes (a control byte becomes 6). */
  static maxOut(n: number): number {
    return (n + 4) * 6;
  }

  /** Encode src into out from offset o (out must have maxOut(src.length) bytes free); returns the new offset. */
  encode(src: Buffer, out: Buffer, o: number): number {
    let need = this.need;
    let seen = this.seen;
    let lower = this.lower;
    let upper = this.upper;
    let prevCR = this.prevCR;
    const part = this.part;
    const onlcr = this.onlcr;
    const n = src.length;
    for (let i = 0; i < n; i++) {
      const b = src[i]!;
      if (need === 0) {
        if (b < 0x80) {
          const len = ESC_LEN[b]!;
          if (len === 1) {
            // A run of bytes that stay as they are: find its end, copy it at once.
            let j = i + 1;
            while (j < n && ESC_LEN[src[j]!] === 1) j++;
            if (j - i > 32) o += src.copy(out, o, i, j);
            else for (let k = i; k < j; k++) out[o++] = src[k]!;
            i = j - 1;
            prevCR = false;
            continue;
          }
          const at = b * 6;
          if (len === 6) {
            // Runs of one control byte (zero-filled regions of binary output) are filled natively.
            let j = i + 1;
            while (j < n && src[j] === b) j++;
            if (j - i >= 8) {
              out.fill(ESC.subarray(at, at + 6), o, o + 6 * (j - i));
              o += 6 * (j - i);
              i = j - 1;
              prevCR = false;
              continue;
            }
          }
          if (b === LF && onlcr && !prevCR) { out[o++] = 0x5c; out[o++] = 0x72; }
          out[o] = ESC[at]!; out[o + 1] = ESC[at + 1]!;
          if (len === 6) { out[o + 2] = ESC[at + 2]!; out[o + 3] = ESC[at + 3]!; out[o + 4] = ESC[at + 4]!; out[o + 5] = ESC[at + 5]!; }
          o += len;
          prevCR = b === CR;
          continue;
        }
        prevCR = false;
        if (b >= 0xc2 && b <= 0xdf) need = 1;
        else if (b >= 0xe0 && b <= 0xef) { need = 2; if (b === 0xe0) lower = 0xa0; else if (b === 0xed) upper = 0x9f; }
        else if (b >= 0xf0 && b <= 0xf4) { need = 3; if (b === 0xf0) lower = 0x90; else if (b === 0xf4) upper = 0x8f; }
        else { out[o++] = 0xef; out[o++] = 0xbf; out[o++] = 0xbd; continue; }
        part[0] = b;
        seen = 0;
        continue;
      }
      if (b < lower || b > upper) {
        // The sequence is broken: one U+FFFD for it, and this byte starts afresh.
        need = 0; seen = 0; lower = 0x80; upper = 0xbf;
        out[o++] = 0xef; out[o++] = 0xbf; out[o++] = 0xbd;
        i--;
        continue;
      }
      lower = 0x80; upper = 0xbf;
      part[++seen] = b;
      if (seen === need) {
        for (let k = 0; k <= need; k++) out[o++] = part[k]!;
        need = 0; seen = 0;
      }
    }
    this.need = need; this.seen = seen; this.lower = lower; this.upper = upper; this.prevCR = prevCR;
    return o;
  }

  /** End of stream: a truncated trailing sequence becomes U+FFFD. Needs 3 bytes free. */
  flush(out: Buffer, o: number): number {
    if (this.need === 0) return o;
    this.need = 0; this.seen = 0; this.lower = 0x80; this.upper = 0xbf; this.prevCR = false;
    out[o++] = 0xef; out[o++] = 0xbf; out[o++] = 0xbd;
    return o;
  }
}
