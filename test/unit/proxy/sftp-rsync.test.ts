import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_ENTRIES, RsyncReader, rsyncCommand, type RsyncEntry } from '../../../src/proxy/sftp/rsync.js';
import { tempDir } from '../../helpers/cli.js';

/**
 * The rsync file-list reader against the real rsync: each transfer runs the stock client with a
 * "remote shell" that runs `rsync --server …` locally and copies both directions to files; the
 * reader is then fed those streams (in small interleaved pieces, as the relay sees them). Then
 * hostile input: truncations, garbage and bit flips never throw and never claim a list was read
 * when the stream ended inside it.
 */
interface Capture { argv: string[]; c2s: Buffer; s2c: Buffer }

let root: string;
let tree: string;
let n = 0;

function capture(args: string[]): Capture {
  const tag = `cap${n++}`;
  const dir = path.join(root, tag);
  fs.mkdirSync(dir);
  const shell = path.join(dir, 'rsh');
  fs.writeFileSync(shell, `#!/bin/bash\nshift\necho "$@" > '${dir}/cmd'\n"$@" < <(tee '${dir}/c2s') | tee '${dir}/s2c'\n`, { mode: 0o755 });
  execFileSync('rsync', ['-e', shell, ...args], { stdio: 'pipe', timeout: 60_000 });
  return { argv: fs.readFileSync(path.join(dir, 'cmd'), 'utf8').trim().split(' '), c2s: fs.readFileSync(path.join(dir, 'c2s')), s2c: fs.readFileSync(path.join(dir, 's2c')) };
}

function read(c: Capture, piece = 1000, cut?: { c2s?: number; s2c?: number }) {
  const entries: RsyncEntry[] = [];
  const r = new RsyncReader(rsyncCommand(c.argv)!, (e) => entries.push(e));
  const up = c.c2s.subarray(0, cut?.c2s);
  const down = c.s2c.subarray(0, cut?.s2c);
  for (let i = 0; i < Math.max(up.length, down.length); i += piece) {
    r.client(up.subarray(i, i + piece));
    r.server(down.subarray(i, i + piece));
  }
  return { result: r.result(), entries };
}

/** What the tree holds, as rsync names it relative to the root (directories and "." left out). */
function expected(): [string, string, number][] {
  const out: [string, string, number][] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(tree, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.isSymbolicLink()) out.push([r, 'symlink', 0]);
      else out.push([r, 'file', fs.statSync(path.join(tree, r)).size]);
    }
  };
  walk('');
  return out.sort();
}
const files = (entries: RsyncEntry[]) => entries.filter((e) => e.type !== 'dir').map((e) => [e.name, e.type, e.size] as [string, string, number]).sort();

describe('rsync file list, read from the real rsync', () => {
  beforeAll(() => {
    root = tempDir('gatehouse-rsync-');
    tree = path.join(root, 'tree');
    for (const d of ['a/b/c', 'd', 'e']) fs.mkdirSync(path.join(tree, d), { recursive: true });
    for (let i = 1; i <= 3; i++) fs.writeFileSync(path.join(tree, 'a', `f${i}.bin`), randomBytes(i * 50_000));
    fs.writeFileSync(path.join(tree, 'd', 'text.txt'), 'text line\n'.repeat(20_000));
    fs.writeFileSync(path.join(tree, 'a/b/c', 'deep name with spaces é.bin'), randomBytes(70_000));
    fs.writeFileSync(path.join(tree, 'e', 'empty'), '');
    fs.symlinkSync('../d', path.join(tree, 'a', 'dl'));
  });

  it('rsync -a and -az, up and down, with incremental recursion and without: every entry with its size', () => {
    const runs: [string, string[]][] = [
      ['upload', ['-a', `${tree}/`, `x:${root}/up1/`]],
      ['upload -z', ['-az', `${tree}/`, `x:${root}/up2/`]],
      ['download', ['-a', `x:${tree}/`, `${root}/down1/`]],
      ['download -z', ['-az', `x:${tree}/`, `${root}/down2/`]],
      ['no incremental recursion', ['-a', '--no-inc-recursive', `${tree}/`, `x:${root}/up3/`]],
    ];
    for (const [what, args] of runs) {
      const c = capture(args);
      const { result, entries } = read(c, 777);
      expect(result, what).toMatchObject({ state: 'read' });
      expect(files(entries), what).toEqual(expected());
      // Byte by byte gives the same.
      expect(files(read(c, 1).entries), what).toEqual(expected());
    }
  });

  it('a delta transfer (the target has older copies) and a second, unchanged run are read too', () => {
    capture(['-a', `${tree}/`, `x:${root}/delta/`]);
    fs.appendFileSync(path.join(tree, 'a', 'f2.bin'), 'more');
    const f3 = path.join(tree, 'a', 'f3.bin');
    const b = fs.readFileSync(f3);
    b[70_000] ^= 1;
    fs.writeFileSync(f3, b);
    for (const args of [['-a'], ['-az'], ['-a']]) {
      const { result, entries } = read(capture([...args, `${tree}/`, `x:${root}/delta/`]), 4096);
      expect(result).toMatchObject({ state: 'read' });
      expect(files(entries)).toEqual(expected());
    }
  });

  it('options that change the list format are unparsed from the start, never guessed', () => {
    for (const opt of ['-H', '-c', '--delete']) {
      const c = capture(['-a', opt, `${tree}/`, `x:${root}/opt${opt}/`]);
      const { result, entries } = read(c);
      expect(result.state, opt).toBe('unparsed');
      expect(result.reason, opt).toMatch(/changes the file list's format/);
      expect(entries).toEqual([]);
    }
  });

  it('a stream cut anywhere before the end of the lists is unparsed; garbage and bit flips never throw', () => {
    const c = capture(['-a', `${tree}/`, `x:${root}/cut/`]);
    // The upload's sender is the client: cut its stream at many points (the whole list is early in it).
    let unparsed = 0;
    const cuts = [...Array.from({ length: 1500 }, (_v, i) => i * 7), ...Array.from({ length: 60 }, () => Math.floor(Math.random() * c.c2s.length))];
    for (const at of cuts) {
      const { result, entries } = read(c, 500, { c2s: at });
      // "read" only once the end-of-lists marker passed, and then the whole list.
      if (result.state === 'read') expect(files(entries)).toEqual(expected());
      else { unparsed++; expect(result.reason).toBeTruthy(); }
    }
    expect(unparsed).toBeGreaterThan(10);
    expect(read(c).result.state).toBe('read');
    for (let i = 0; i < 300; i++) {
      const flipped = Buffer.from(c.c2s);
      const at = Math.floor(Math.random() * Math.min(flipped.length, 2000));
      flipped[at] ^= 1 << Math.floor(Math.random() * 8);
      expect(() => read({ ...c, c2s: flipped }, 64)).not.toThrow();
      expect(() => read({ ...c, c2s: randomBytes(2000), s2c: i % 2 ? randomBytes(500) : c.s2c }, 64)).not.toThrow();
    }
  });

  it('memory stays bounded: a side talking before the other answered, and an endless list, are cut off', () => {
    const cmd = rsyncCommand(['rsync', '--server', '-logDtpre.iLsfxCIvu', '.', '/x'])!;
    const r = new RsyncReader(cmd, () => {});
    const v = Buffer.from([32, 0, 0, 0]);
    r.client(v);
    for (let i = 0; i < 100; i++) r.client(randomBytes(1024)); // the server never spoke
    expect(r.result()).toMatchObject({ state: 'unparsed', reason: 'one side sent too much before the other answered' });
    expect(MAX_ENTRIES).toBeLessThanOrEqual(100_000);
  });
});
