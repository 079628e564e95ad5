import fs from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '../shared/errors.js';
import { readArchive } from './archive.js';
import { readBundle, type Manifest } from './bundle.js';

/**
 * `gatehouse backup verify` and `gatehouse restore`. Both read the whole archive: every chunk is
 * authenticated before its bytes are used, every file's SHA-256 is checked against the manifest.
 * A restore writes into an empty directory only; if anything fails, what it wrote is removed.
 */
export interface ArchiveSummary {
  manifest: Manifest;
  files: number;
  bytes: number;
}

function openArchive(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (err) {
    throw new GatehouseError('GH_NOT_FOUND', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      hint: 'give the path of a file written by gatehouse backup --out',
    });
  }
}

export async function verifyArchive(file: string, passphrase: Buffer): Promise<ArchiveSummary> {
  const fd = openArchive(file);
  try {
    let files = 0;
    let bytes = 0;
    let manifest: Manifest | null = null;
    for await (const ev of readBundle(readArchive(fd, passphrase))) {
      if (ev.kind === 'end-file') { files++; bytes += ev.size; }
      if (ev.kind === 'manifest') manifest = ev.manifest;
    }
    return { manifest: manifest!, files, bytes };
  } finally {
    fs.closeSync(fd);
  }
}

/** Created with 0700, or an existing empty directory; anything else is refused before a byte is read. */
function prepareTarget(dir: string): boolean {
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) throw new GatehouseError('GH_EXISTS', `${dir} exists and is not a directory`, { hint: 'restore into a new, empty directory' });
    if (fs.readdirSync(dir).length > 0) {
      throw new GatehouseError('GH_EXISTS', `${dir} is not empty; a restore never overwrites a data directory`, { hint: 'restore into a new, empty directory, then point the server at it' });
    }
    fs.chmodSync(dir, 0o700);
    return false;
  }
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  return true;
}

function emptyOut(dir: string, created: boolean): void {
  if (created) { fs.rmSync(dir, { recursive: true, force: true }); return; }
  for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
}

export async function restoreArchive(file: string, passphrase: Buffer, dir: string): Promise<ArchiveSummary> {
  const target = path.resolve(dir);
  const fd = openArchive(file);
  let created: boolean;
  try {
    // Outside the clean-up below: a directory refused here is never touched.
    created = prepareTarget(target);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  let out: number | null = null;
  try {
    let files = 0;
    let bytes = 0;
    let manifest: Manifest | null = null;
    for await (const ev of readBundle(readArchive(fd, passphrase))) {
      if (ev.kind === 'file') {
        // safePath() already kept the name inside the directory's fixed layout.
        const dest = path.join(target, ...ev.path.split('/'));
        fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 });
        // Every restored file is private, the keys and master.key above all.
        out = fs.openSync(dest, 'wx', 0o600);
      } else if (ev.kind === 'data') {
        fs.writeSync(out!, ev.data);
      } else if (ev.kind === 'end-file') {
        fs.fsyncSync(out!);
        fs.closeSync(out!);
        out = null;
        files++;
        bytes += ev.size;
      } else {
        manifest = ev.manifest;
      }
    }
    return { manifest: manifest!, files, bytes };
  } catch (err) {
    if (out !== null) { fs.closeSync(out); out = null; }
    if (fs.existsSync(target)) emptyOut(target, created);
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}
