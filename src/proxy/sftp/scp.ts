import { createHash, type Hash } from 'node:crypto';
import path from 'node:path/posix';
import { plainArgv, scpMode } from '../transfer.js';
import type { Capture } from './tracker.js';
import { MAX_PATH, WireError } from './wire.js';

/**
 * The legacy scp protocol (`scp -O`), read from the side that sends files: the operator's stream
 * for `scp -t` (upload), the target's for `scp -f` (download). Records are lines — `C0644 SIZE
 * NAME`, `D0755 0 NAME`, `E`, `T…` — and a C record's SIZE bytes of content follow it, then one
 * status byte. Each file is reported with its path, mode, size and SHA-256 (or `partial` when the
 * stream ended inside it). A record line is at most MAX_PATH + 64 bytes and directories nest at
 * most MAX_DEPTH deep; more is a protocol violation.
 */
export interface ScpFile {
  direction: 'upload' | 'download';
  /** Where the file went or came from; for `scp -t PATH` without -r/-d, PATH itself (a file, or a directory the file went into as NAME). */
  path: string;
  /** The name in the C record. */
  name: string;
  mode: string;
  size: number;
  bytes: number;
  sha256: string;
  /** With content capture on: what became of the file's content (recorder/filecontent.ts). */
  content?: string;
}

const MAX_LINE = MAX_PATH + 64;
const MAX_DEPTH = 256;

export interface ScpCommand {
  direction: 'upload' | 'download';
  /** The path on the target's command line. */
  target: string;
  /** -r or -d: the target path is a directory the files go into. */
  intoDir: boolean;
}

/** What `scp -t|-f … PATH` asks for, or null when the command is not scp. */
export function scpCommand(command: string | null): ScpCommand | null {
  const argv = command === null ? null : plainArgv(command);
  // The same reading as admission's (transfer.ts): the mode at its position, never a path named -f.
  const scp = argv === null ? null : scpMode(argv);
  if (!scp) return null;
  return { direction: scp.mode === 't' ? 'upload' : 'download', target: scp.path, intoDir: scp.flags.includes('-r') || scp.flags.includes('-d') };
}

export class ScpParser {
  private state: 'line' | 'data' | 'status' = 'line';
  private line: Buffer[] = [];
  private lineLen = 0;
  private dirs: string[] = [];
  private file: { path: string; name: string; mode: string; size: number; left: number; hash: Hash; capture: Capture | null } | null = null;

  constructor(private readonly cmd: ScpCommand, private readonly emit: (f: ScpFile) => void, private readonly capture: (() => Capture) | null = null) {}

  /** Bytes from the sending side. Throws WireError on a malformed record. */
  push(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.state === 'data') {
        const f = this.file!;
        const take = Math.min(f.left, data.length);
        f.hash.update(data.subarray(0, take));
        f.capture?.write(data.subarray(0, take));
        f.left -= take;
        data = data.subarray(take);
        if (f.left === 0) this.state = 'status';
      } else if (this.state === 'status') {
        const ok = data[0] === 0;
        data = data.subarray(1);
        this.done(ok);
        this.state = 'line';
      } else {
        const nl = data.indexOf(0x0a);
        const part = nl < 0 ? data : data.subarray(0, nl);
        this.lineLen += part.length;
        if (this.lineLen > MAX_LINE) throw new WireError(`scp record longer than ${MAX_LINE} bytes`);
        this.line.push(Buffer.from(part));
        if (nl < 0) return;
        data = data.subarray(nl + 1);
        const text = Buffer.concat(this.line).toString('utf8');
        this.line = [];
        this.lineLen = 0;
        this.record(text);
      }
    }
  }

  /** The stream ended: a file cut short is reported `partial`. */
  end(): void {
    if (this.file) this.done(false);
  }

  private record(text: string): void {
    const kind = text[0];
    if (kind === 'C' || kind === 'D') {
      const m = /^[CD]([0-7]{4}) ([0-9]{1,16}) (.+)$/.exec(text);
      if (!m) throw new WireError('malformed scp record');
      const [, mode, sizeText, name] = m;
      const size = Number(sizeText);
      if (!Number.isSafeInteger(size)) throw new WireError('scp file size out of range');
      const full = this.pathOf(name!);
      if (kind === 'D') {
        if (this.dirs.length >= MAX_DEPTH) throw new WireError('scp directories nest too deep');
        this.dirs.push(full);
        return;
      }
      this.file = { path: full, name: name!, mode: mode!, size, left: size, hash: createHash('sha256'), capture: this.capture ? this.capture() : null };
      this.state = size === 0 ? 'status' : 'data';
    } else if (kind === 'E') {
      this.dirs.pop();
    }
    // T (times) and error lines (\x01, \x02) carry no file.
  }

  private pathOf(name: string): string {
    const dir = this.dirs.at(-1);
    if (dir !== undefined) return path.join(dir, name);
    const { target, intoDir, direction } = this.cmd;
    if (direction === 'upload') return intoDir || target.endsWith('/') || target === '.' ? path.join(target, name) : target;
    // Download: the target path names the file (or the directory, sent as a D record) itself.
    return path.basename(target) === name ? target : path.join(target, name);
  }

  private done(ok: boolean): void {
    const f = this.file;
    if (!f) return;
    this.file = null;
    const bytes = f.size - f.left;
    const sha256 = ok && f.left === 0 ? f.hash.digest('hex') : 'partial';
    const content = f.capture?.finish({ direction: this.cmd.direction, path: f.path, size: bytes, sha256 });
    this.emit({ direction: this.cmd.direction, path: f.path, name: f.name, mode: f.mode, size: f.size, bytes, sha256, ...(content !== undefined ? { content } : {}) });
  }

  /** The stream was ended as malformed: a file's captured content is dropped. */
  discard(): void {
    this.file?.capture?.abort();
    this.file = null;
  }
}
