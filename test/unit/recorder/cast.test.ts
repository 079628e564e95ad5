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
  let out = enc.header({ width: 80, height: 24, timestamp: 1764000000, title: 'alice → deploy@web1', command: 'ls', term: 'xterm-256color' });
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

describe('asciicast v2 encoder', () => {
  it('matches the golden file (input off)', () => {
    golden('session-no-input.cast', script(false));
  });

  it('matches the golden file (input on)', () => {
    golden('session-with-input.cast', script(true));
  });

  it('shows bare LF as CRLF for channels without a pty (what the operator\'s terminal showed)', () => {
    const enc = new CastEncoder(0, () => 0, true);
    expect(enc.output(Buffer.from('a\nb\r\nc'))).toBe('[0,"o","a\\r\\nb\\r\\nc"]\n');
    expect(new CastEncoder(0, () => 0).output(Buffer.from('a\nb'))).toBe('[0,"o","a\\nb"]\n');
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
