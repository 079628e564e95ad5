import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CastEncoder } from '../../../src/recorder/cast.js';
import { FIXTURES } from '../../helpers/cli.js';

/** Golden files: the exact bytes an encoder produces for a scripted session on a fake clock. */
function golden(name: string, produced: string): void {
  const file = path.join(FIXTURES, 'casts', name);
  if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(file, produced);
  expect(produced).toBe(fs.readFileSync(file, 'utf8'));
}

function script(withInput: boolean): string {
  let now = 1_000_000;
  const enc = new CastEncoder(now, () => now);
  let out = String(enc.header({ width: 80, height: 24, timestamp: 1764000000, title: 'alice → deploy@web1', command: 'ls', term: 'xterm-256color' }));
  out += enc.marker('ls');
  now += 12.3456789;
  // "€" is E2 82 AC: split across two chunks, it must stay one character.
  out += enc.output(Buffer.from([0x70, 0x72, 0x69, 0x63, 0x65, 0x3a, 0x20, 0xe2, 0x82]));
  now += 1;
  out += enc.output(Buffer.from([0xac, 0x0d, 0x0a]));
  now += 250;
  out += enc.resize(132, 50);
  now += 0.5;
  // Invalid bytes (0xFF, an overlong C0 AF, an encoded surrogate ED A0 80) become U+FFFD.
  out += enc.output(Buffer.from([0x61, 0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0x62]));
  now += 3;
  // stderr and stdout interleave in arrival order into the same "o" stream.
  out += enc.output(Buffer.from('err line\n'));
  out += enc.output(Buffer.from('out line\n'));
  now += 1000;
  if (withInput) {
    out += enc.input(Buffer.from([0x79, 0xc3]));
    out += enc.input(Buffer.from([0xa9, 0x0d]));
  }
  now += 2.000001;
  // A 4-byte emoji cut in half at the end of the session is flushed as U+FFFD, never a lone surrogate.
  out += enc.output(Buffer.from([0xf0, 0x9f]));
  out += enc.finish(withInput);
  return out;
}

/**
 * The reference the byte encoder must equal: the whole stream through TextDecoder, ONLCR applied,
 * then JSON. Inputs mix every byte class (ASCII, escapes, valid 2/3/4-byte characters, overlongs,
 * surrogates, stray continuation bytes, truncated sequences) and are cut at random points.
 */
function randomStream(rnd: () => number, n: number): Buffer {
  const pieces = [
    [0x41], [0x22], [0x5c], [0x00], [0x1b], [0x7f], [0x0a], [0x0d], [0x0d, 0x0a], [0x09],
    [0xc3, 0xa9], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x98, 0x80], [0xef, 0xbb, 0xbf], [0xe2, 0x80, 0xa8],
    [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe0, 0x80], [0xf0, 0x80], [0x80], [0xbf], [0xff], [0xf5],
    [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3],
    new Array(20).fill(0x00), new Array(9).fill(0x1b), new Array(40).fill(0x61),
  ];
  const out: number[] = [];
  while (out.length < n) out.push(...pieces[Math.floor(rnd() * pieces.length)]!);
  return Buffer.from(out);
}

function lcg(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe('asciicast v2 encoder', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('encodes raw bytes exactly as TextDecoder + JSON.stringify would (seed %i)', (seed) => {
    const rnd = lcg(seed);
    for (const onlcr of [false, true]) {
      const whole = randomStream(rnd, 3000);
      const enc = new CastEncoder(0, () => 0, onlcr);
      let lines = '';
      for (let at = 0; at < whole.length;) {
        const len = 1 + Math.floor(rnd() * 40);
        lines += enc.output(whole.subarray(at, at + len)).toString();
        at += len;
      }
      lines += enc.finish(false).toString();
      const events = lines.trimEnd().split('\n').map((l) => JSON.parse(l) as [number, string, string]);
      for (const [, , data] of events) expect(data.isWellFormed()).toBe(true);
      let want = new TextDecoder('utf-8', { ignoreBOM: true }).decode(whole);
      if (onlcr) want = want.replace(/\r?\n/g, '\r\n');
      expect(events.map((e) => e[2]).join('')).toBe(want);
    }
  });

  it('keeps a leading byte order mark (the terminal got it too)', () => {
    const enc = new CastEncoder(0, () => 0);
    expect(JSON.parse(enc.output(Buffer.from([0xef, 0xbb, 0xbf, 0x61])).toString())[2]).toBe('\ufeffa');
  });

  it('records nothing for a chunk that ends inside a character, then the whole character', () => {
    const enc = new CastEncoder(0, () => 0);
    expect(enc.output(Buffer.from([0xe2, 0x82])).length).toBe(0);
    expect(JSON.parse(enc.output(Buffer.from([0xac])).toString())[2]).toBe('€');
  });

  it('matches the golden file (input off)', () => {
    golden('session-no-input.cast', script(false));
  });

  it('matches the golden file (input on)', () => {
    golden('session-with-input.cast', script(true));
  });

  it('shows bare LF as CRLF for channels without a pty (what the operator\'s terminal showed)', () => {
    const enc = new CastEncoder(0, () => 0, true);
    expect(enc.output(Buffer.from('a\nb\r\nc')).toString()).toBe('[0,"o","a\\r\\nb\\r\\nc"]\n');
    expect(new CastEncoder(0, () => 0).output(Buffer.from('a\nb')).toString()).toBe('[0,"o","a\\nb"]\n');
    // A CR at the end of one packet and its LF at the start of the next are one CRLF, not two.
    const split = new CastEncoder(0, () => 0, true);
    expect(split.output(Buffer.from('a\r')).toString() + split.output(Buffer.from('\nb')).toString()).toBe('[0,"o","a\\r"]\n[0,"o","\\nb"]\n');
  });

  it('writes one complete JSON line per event with well-formed strings', () => {
    const lines = script(true).trimEnd().split('\n');
    expect(JSON.parse(lines[0]!)).toMatchObject({ version: 2, width: 80, height: 24, env: { TERM: 'xterm-256color' }, command: 'ls' });
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    expect(events.map((e) => e[1])).toEqual(['m', 'o', 'o', 'r', 'o', 'o', 'o', 'i', 'i', 'o']);
    expect(events.find((e) => e[1] === 'o' && e[2].includes('€'))?.[2]).toBe('€\r\n');
    expect(events.find((e) => e[1] === 'r')?.[2]).toBe('132x50');
    expect(events.find((e) => e[1] === 'o' && e[2].startsWith('a'))?.[2]).toBe('a\ufffd\ufffd\ufffd\ufffd\ufffd\ufffdb');
    for (const [, , data] of events) expect(data.isWellFormed()).toBe(true);
    const times = events.map((e) => e[0]);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times[1]).toBe(0.012346);
  });
});
