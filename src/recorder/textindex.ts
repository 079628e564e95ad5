import fs from 'node:fs';
import { stripVTControlCharacters } from 'node:util';
import type { Store } from '../store/types.js';

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
    const text = stripVTControlCharacters(cur).replace(/\r/g, '');
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

export async function indexRecording(store: Store, file: string, sessionId: string, channel: number): Promise<void> {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(fs.fstatSync(fd).size, MAX_INDEXED));
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, buf.lastIndexOf(0x0a, n - 1) + 1).toString('utf8');
    await store.search.index(sessionId, channel, textChunks(text));
  } finally {
    fs.closeSync(fd);
  }
}
