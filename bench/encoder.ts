/**
 * `npx tsx bench/encoder.ts`: the recorder's cost per 64 MiB of exec output on the relay's thread,
 * for three payloads (NUL bytes, terminal text, random binary), in 32 KiB chunks as ssh2 hands
 * them over. The old path (TextDecoder + ONLCR regex + JSON.stringify + Buffer.from) is timed
 * alongside the encoder that replaced it.
 */
import { CastEncoder } from '../src/recorder/cast.js';

const CHUNKS = 2048;
const mk = (f: (i: number) => number) => { const b = Buffer.alloc(32768); for (let i = 0; i < b.length; i++) b[i] = f(i); return b; };
let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const payloads: Record<string, Buffer> = { nul: Buffer.alloc(32768), text: mk((i) => (i % 80 === 79 ? 10 : 32 + ((i * 7) % 90))), random: mk(() => Math.floor(rnd() * 256)) };

function oldPath(chunk: Buffer, dec: InstanceType<typeof TextDecoder>): Buffer {
  const s = dec.decode(chunk, { stream: true }).replace(/\r?\n/g, '\r\n');
  return Buffer.from(JSON.stringify([1.234567, 'o', s]) + '\n');
}

for (const [name, chunk] of Object.entries(payloads)) {
  const times: Record<string, number> = {};
  let outBytes = 0;
  for (const which of ['old', 'new', 'old', 'new']) {
    const dec = new TextDecoder('utf-8');
    const enc = new CastEncoder(0, () => 1234.567, true);
    const t0 = performance.now();
    outBytes = 0;
    for (let i = 0; i < CHUNKS; i++) outBytes += (which === 'old' ? oldPath(chunk, dec) : enc.output(chunk)).length;
    times[which] = performance.now() - t0; // the second (warm) run of each counts
  }
  console.log(`${name.padEnd(6)} 64 MiB -> ${(outBytes / 2 ** 20).toFixed(0)} MiB of asciicast: old ${times.old!.toFixed(0)} ms, new ${times.new!.toFixed(0)} ms`);
}
