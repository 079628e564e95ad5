import path from 'node:path/posix';
import { ContentHash, HeldBudget, MAX_HELD_BYTES } from './content.js';
import { Reader, SSH_FX, SSH_FXF, SSH_FXP, statusPacket, WireError } from './wire.js';

/**
 * Follows one SFTP v3 session from both sides: requests (operator → target) and replies
 * (target → operator), matched by request id; files by the handle the target returned. For each
 * file it counts the bytes read and written and hashes the content (content.ts) when the file was
 * read from 0 to EOF or written from 0 into a file opened with TRUNC/EXCL. State is bounded:
 * pending requests, open handles and remembered realpaths each have a limit, and a request over it
 * is a protocol violation (the channel ends), like a malformed packet.
 *
 * Read-only mode (the `sftp-read` right): every request that could change the target's files is
 * answered here with SSH_FX_PERMISSION_DENIED and never forwarded.
 */
export type SftpEvent =
  | { type: 'open'; path: string; flags: string[]; error?: string }
  | {
      type: 'close'; path: string; flags: string[]; direction: Direction; bytesRead: number; bytesWritten: number;
      size: number; sha256: string; partialReason?: string; unclosed?: boolean;
      /** With content capture on: what became of the file's content (recorder/filecontent.ts). */
      content?: string;
    }
  | { type: 'rename'; path: string; to: string; ok: boolean; error?: string }
  | { type: 'remove' | 'mkdir' | 'rmdir' | 'setstat'; path: string; ok: boolean; error?: string }
  | { type: 'symlink'; path: string; target: string; ok: boolean; error?: string }
  | { type: 'denied'; op: string; path: string };

export type Direction = 'upload' | 'download' | 'both' | 'none';

/** Content capture of one file (recorder/filecontent.ts): the content in order, then the result. */
export interface Capture {
  write(data: Buffer): void;
  finish(f: { direction: string; path: string; size: number; sha256: string }): string;
  abort(): void;
}

export const PARTIAL = 'partial';
export const MAX_PENDING = 4096;
export const MAX_HANDLES = 1024;
const MAX_REALPATHS = 256;
const MAX_HANDLE_BYTES = 256;

/** Extended requests that only read (OpenSSH's names); every other one writes or is unknown. */
const READ_ONLY_EXTENSIONS = new Set([
  'statvfs@openssh.com', 'fstatvfs@openssh.com', 'limits@openssh.com', 'expand-path@openssh.com',
  'home-directory', 'users-groups-by-id@openssh.com', 'fsync@openssh.com',
]);

const STATUS_TEXT: Record<number, string> = {
  0: 'ok', 1: 'eof', 2: 'no such file', 3: 'permission denied', 4: 'failure', 5: 'bad message', 8: 'unsupported',
};

interface FileState {
  path: string;
  pflags: number;
  read: ContentHash;
  write: ContentHash;
  /** The lowest offset a READ was answered EOF at. */
  eofAt: number | null;
  pendingWrites: number;
  partial: string | null;
  /** The size set through the handle, when it was exactly the end of the content written. */
  sizeSet: number | null;
  /** Content capture of what was read and of what was written (created on the first byte). */
  captures: { read: Capture | null; write: Capture | null } | null;
}

type Req =
  | { op: 'open'; path: string; pflags: number }
  | { op: 'opendir' }
  | { op: 'close'; handle: string }
  | { op: 'read'; file: FileState; offset: number; len: number }
  | { op: 'write'; file: FileState }
  | { op: 'path'; kind: 'remove' | 'mkdir' | 'rmdir' | 'setstat'; path: string }
  | { op: 'rename'; path: string; to: string }
  | { op: 'symlink'; path: string; target: string }
  | { op: 'realpath'; path: string }
  | { op: 'other' };

export type ClientVerdict = { forward: true } | { forward: false; reply: Buffer };

const FORWARD: ClientVerdict = { forward: true };

export function flagNames(pflags: number): string[] {
  return (Object.entries(SSH_FXF) as [string, number][]).filter(([, v]) => pflags & v).map(([k]) => k.toLowerCase());
}

export class SftpTracker {
  private readonly pending = new Map<number, Req>();
  private readonly handles = new Map<string, FileState | 'dir'>();
  /** Out-of-order bytes held by all of this channel's files together. */
  private readonly held = new HeldBudget();
  private readonly realpaths = new Map<string, string>();
  private cwd: string | null = null;

  constructor(private readonly emit: (ev: SftpEvent) => void, private readonly readOnly = false, private readonly capture: (() => Capture) | null = null) {}

  /** One request from the operator. Throws WireError on a malformed or over-limit request. */
  client(pkt: Buffer): ClientVerdict {
    const r = new Reader(pkt);
    const type = r.byte();
    if (type === SSH_FXP.INIT) return FORWARD;
    const id = r.u32();
    const deny = (op: string, p: string): ClientVerdict => {
      this.emit({ type: 'denied', op, path: p });
      return { forward: false, reply: statusPacket(id, SSH_FX.PERMISSION_DENIED, 'gatehouse: read-only access (sftp-read)') };
    };
    let req: Req;
    switch (type) {
      case SSH_FXP.OPEN: {
        const p = this.resolve(r.path());
        const pflags = r.u32();
        r.attrs();
        if (this.readOnly && (pflags & ~SSH_FXF.READ) !== 0) return deny('open', p);
        if ((pflags & ~SSH_FXF.READ) !== 0) this.taint(p, 'written through another handle');
        req = { op: 'open', path: p, pflags };
        break;
      }
      case SSH_FXP.OPENDIR: r.path(); req = { op: 'opendir' }; break;
      case SSH_FXP.CLOSE: req = { op: 'close', handle: this.handle(r) }; break;
      case SSH_FXP.READ: {
        const file = this.file(this.handle(r));
        const offset = r.u64();
        const len = r.u32();
        req = file ? { op: 'read', file, offset, len } : { op: 'other' };
        break;
      }
      case SSH_FXP.WRITE: {
        const h = this.handle(r);
        const offset = r.u64();
        const data = r.bytes();
        const file = this.file(h);
        if (this.readOnly) return deny('write', file?.path ?? '');
        if (!file) { req = { op: 'other' }; break; }
        file.write.add(offset, data);
        file.pendingWrites++;
        req = { op: 'write', file };
        break;
      }
      case SSH_FXP.REMOVE: case SSH_FXP.MKDIR: case SSH_FXP.RMDIR: case SSH_FXP.SETSTAT: {
        const kind = type === SSH_FXP.REMOVE ? 'remove' : type === SSH_FXP.MKDIR ? 'mkdir' : type === SSH_FXP.RMDIR ? 'rmdir' : 'setstat';
        const p = this.resolve(r.path());
        if (this.readOnly) return deny(kind, p);
        // A size set by path (truncate) changes content an open handle's hash cannot see.
        if (kind === 'setstat' && r.attrs().size !== null) this.taint(p, 'truncated by path');
        req = { op: 'path', kind, path: p };
        break;
      }
      case SSH_FXP.FSETSTAT: {
        const file = this.file(this.handle(r));
        if (this.readOnly) return deny('setstat', file?.path ?? '');
        // A size set through the handle (truncate) changes content the hash cannot see, unless it
        // is exactly where the written content ends (OpenSSH's scp sets it after an upload).
        const size = file ? r.attrs().size : null;
        if (file && size !== null) {
          if (size !== file.write.contiguous || file.write.partialReason !== null || file.read.bytes > 0) file.partial = 'truncated through the handle';
          else file.sizeSet = size;
        }
        req = file ? { op: 'path', kind: 'setstat', path: file.path } : { op: 'other' };
        break;
      }
      case SSH_FXP.RENAME: {
        const from = this.resolve(r.path());
        const to = this.resolve(r.path());
        if (this.readOnly) return deny('rename', from);
        req = { op: 'rename', path: from, to };
        break;
      }
      case SSH_FXP.SYMLINK: {
        // OpenSSH sends (target, link), the reverse of the draft; both are recorded as sent.
        const a = r.path();
        const b = r.path();
        if (this.readOnly) return deny('symlink', this.resolve(b));
        req = { op: 'symlink', path: this.resolve(b), target: a };
        break;
      }
      case SSH_FXP.REALPATH: req = { op: 'realpath', path: r.path() }; break;
      case SSH_FXP.LSTAT: case SSH_FXP.STAT: case SSH_FXP.READLINK: r.path(); req = { op: 'other' }; break;
      case SSH_FXP.FSTAT: case SSH_FXP.READDIR: this.handle(r); req = { op: 'other' }; break;
      case SSH_FXP.EXTENDED: {
        const name = r.bytes(256).toString('latin1');
        if (name === 'posix-rename@openssh.com') {
          req = { op: 'rename', path: this.resolve(r.path()), to: this.resolve(r.path()) };
        } else if (name === 'lsetstat@openssh.com') {
          const p = this.resolve(r.path());
          if (!this.readOnly && r.attrs().size !== null) this.taint(p, 'truncated by path');
          req = { op: 'path', kind: 'setstat', path: p };
        } else {
          req = { op: 'other' };
          // copy-data@openssh.com and any extension we do not know may write into an open file.
          if (!this.readOnly && !READ_ONLY_EXTENSIONS.has(name) && name !== 'posix-rename@openssh.com' && name !== 'hardlink@openssh.com') {
            this.taint(null, `changed by ${name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)}`);
          }
        }
        if (this.readOnly && !READ_ONLY_EXTENSIONS.has(name)) {
          if (req.op === 'rename') return deny('rename', req.path);
          if (req.op === 'path') return deny(req.kind, req.path);
          return deny(name.replace(/[^\x20-\x7e]/g, '?'), name === 'hardlink@openssh.com' ? this.resolve(r.path()) : '');
        }
        break;
      }
      default:
        if (this.readOnly) return deny(`type ${type}`, '');
        // Not a v3 request: nothing to audit it as, and OpenSSH's client never sends one.
        throw new WireError(`unknown SFTP request type ${type}`);
    }
    this.track(id, req);
    return FORWARD;
  }

  /** One reply from the target. Throws WireError on a malformed reply. */
  server(pkt: Buffer): void {
    const r = new Reader(pkt);
    const type = r.byte();
    if (type === SSH_FXP.VERSION) {
      const v = r.u32();
      if (v !== 3) throw new WireError(`SFTP version ${v} is not supported (gatehouse follows version 3)`);
      return;
    }
    const id = r.u32();
    const req = this.pending.get(id);
    if (!req) return;
    this.pending.delete(id);
    switch (type) {
      case SSH_FXP.STATUS: return this.status(req, r.u32());
      case SSH_FXP.HANDLE: {
        const h = r.bytes(MAX_HANDLE_BYTES).toString('hex');
        if (req.op !== 'open' && req.op !== 'opendir') return;
        if (this.handles.size >= MAX_HANDLES) throw new WireError(`more than ${MAX_HANDLES} open handles`);
        if (req.op === 'opendir') { this.handles.set(h, 'dir'); return; }
        const f: FileState = { path: req.path, pflags: req.pflags, read: new ContentHash(MAX_HELD_BYTES, this.held), write: new ContentHash(MAX_HELD_BYTES, this.held), eofAt: null, pendingWrites: 0, partial: null, sizeSet: null, captures: null };
        if (this.capture) {
          const captures: { read: Capture | null; write: Capture | null } = { read: null, write: null };
          f.captures = captures;
          const newCapture = this.capture;
          f.read.tap = (d) => (captures.read ??= newCapture()).write(d);
          f.write.tap = (d) => (captures.write ??= newCapture()).write(d);
        }
        this.handles.set(h, f);
        this.emit({ type: 'open', path: req.path, flags: flagNames(req.pflags) });
        return;
      }
      case SSH_FXP.DATA: {
        const data = r.bytes();
        if (req.op !== 'read') return;
        if (data.length > req.len) req.file.partial = 'a reply longer than the read asked for';
        req.file.read.add(req.offset, data);
        return;
      }
      case SSH_FXP.NAME: {
        if (req.op !== 'realpath') return;
        if (r.u32() < 1) return;
        const resolved = r.path();
        if (req.path === '.' || req.path === '') this.cwd = resolved;
        if (this.realpaths.size >= MAX_REALPATHS) this.realpaths.delete(this.realpaths.keys().next().value!);
        this.realpaths.set(req.path, resolved);
        return;
      }
      default:
        // ATTRS, EXTENDED_REPLY: nothing to follow. A reply of the wrong kind to a write breaks its hash.
        if (req.op === 'write') { req.file.pendingWrites--; req.file.partial = 'unexpected reply to a write'; }
    }
  }

  /** The stream was ended as malformed: captured content of files still open is dropped. */
  discard(): void {
    for (const f of this.handles.values()) if (f !== 'dir' && f.captures) { f.captures.read?.abort(); f.captures.write?.abort(); }
  }

  /** The channel ended: files still open are reported as they stand. */
  end(): void {
    for (const [h, f] of this.handles) if (f !== 'dir') { this.handles.delete(h); this.closed(f, true); }
    this.pending.clear();
  }

  private status(req: Req, code: number): void {
    const ok = code === SSH_FX.OK;
    const error = ok ? undefined : STATUS_TEXT[code] ?? `status ${code}`;
    switch (req.op) {
      case 'open': this.emit({ type: 'open', path: req.path, flags: flagNames(req.pflags), error: error ?? 'failed' }); return;
      case 'close': {
        const f = this.handles.get(req.handle);
        this.handles.delete(req.handle);
        if (f && f !== 'dir') this.closed(f, false);
        return;
      }
      case 'read':
        if (code === SSH_FX.EOF) req.file.eofAt = Math.min(req.file.eofAt ?? Infinity, req.offset);
        else if (!ok) req.file.partial = `a read failed (${error})`;
        return;
      case 'write':
        req.file.pendingWrites--;
        if (!ok) req.file.partial = `a write failed (${error})`;
        return;
      case 'path': this.emit({ type: req.kind, path: req.path, ok, ...(error ? { error } : {}) }); return;
      case 'rename': this.emit({ type: 'rename', path: req.path, to: req.to, ok, ...(error ? { error } : {}) }); return;
      case 'symlink': this.emit({ type: 'symlink', path: req.path, target: req.target, ok, ...(error ? { error } : {}) }); return;
      default:
    }
  }

  private closed(f: FileState, unclosed: boolean): void {
    const wrote = f.write.bytes > 0 || (f.pflags & (SSH_FXF.WRITE | SSH_FXF.APPEND)) !== 0;
    const read = f.read.bytes > 0;
    const direction: Direction = wrote && read ? 'both' : wrote ? 'upload' : read ? 'download' : 'none';
    let why = f.partial;
    let hash: string | null = null;
    if (direction === 'upload') {
      // Without TRUNC/EXCL the file may hold more than was written, unless its size was then set to
      // exactly the written end (what OpenSSH's scp does instead of TRUNC).
      if (!(f.pflags & (SSH_FXF.TRUNC | SSH_FXF.EXCL)) && f.sizeSet !== f.write.contiguous) why ??= 'opened without truncating: the rest of the file is unknown';
      if (f.pflags & SSH_FXF.APPEND) why ??= 'opened for append';
      if (f.pendingWrites !== 0) why ??= 'writes not acknowledged';
      why ??= f.write.partialReason;
      if (why === null) hash = f.write.finish();
    } else if (direction === 'download') {
      if (f.eofAt === null || f.eofAt !== f.read.contiguous) why ??= 'not read to the end';
      why ??= f.read.partialReason;
      if (why === null) hash = f.read.finish();
    } else {
      why ??= direction === 'both' ? 'read and written' : 'no content moved';
    }
    const size = direction === 'upload' ? f.write.contiguous : f.read.contiguous;
    let content: string | undefined;
    if (f.captures) f.read.tap = f.write.tap = null;
    if (f.captures && direction === 'none') { f.captures.read?.abort(); f.captures.write?.abort(); }
    else if (f.captures) {
      const { read: r, write: w } = f.captures;
      const kept = direction === 'upload' ? w : direction === 'download' ? r : null;
      for (const c of [r, w]) if (c && c !== kept) c.abort();
      content = kept ? kept.finish({ direction, path: f.path, size, sha256: hash ?? PARTIAL })
        // An empty file moved whole: its (empty) content is stored too.
        : (direction === 'upload' || direction === 'download') && hash !== null && size === 0 ? this.capture!().finish({ direction, path: f.path, size, sha256: hash }) : 'not whole';
    }
    this.emit({
      type: 'close', path: f.path, flags: flagNames(f.pflags), direction, bytesRead: f.read.bytes, bytesWritten: f.write.bytes,
      size, sha256: hash ?? PARTIAL, ...(hash === null && why ? { partialReason: why } : {}), ...(unclosed ? { unclosed } : {}),
      ...(content !== undefined ? { content } : {}),
    });
  }

  /**
   * Files open for writing (on `path`, or all of them) whose content something other than their
   * own WRITEs may have changed: their hash would not be the file's, so it is `partial`.
   */
  private taint(path: string | null, why: string): void {
    for (const f of this.handles.values()) {
      if (f === 'dir' || (f.pflags & ~SSH_FXF.READ) === 0) continue;
      if (path === null || f.path === path) f.partial ??= why;
    }
  }

  private track(id: number, req: Req): void {
    // A request id reused while pending: its reply could be matched to either request, so an open's
    // handle or a realpath's answer could be given to another path. OpenSSH never does it.
    if (this.pending.has(id)) throw new WireError(`request id ${id} reused while still pending`);
    if (this.pending.size >= MAX_PENDING) {
      throw new WireError(`more than ${MAX_PENDING} requests outstanding`);
    }
    this.pending.set(id, req);
  }

  private handle(r: Reader): string {
    return r.bytes(MAX_HANDLE_BYTES).toString('hex');
  }

  private file(h: string): FileState | null {
    const f = this.handles.get(h);
    return f && f !== 'dir' ? f : null;
  }

  /** The path as the target will resolve it: a realpath the client asked for, or relative to its home. */
  private resolve(p: string): string {
    const known = this.realpaths.get(p);
    if (known !== undefined) return known;
    if (p.startsWith('/') || this.cwd === null) return p;
    return path.join(this.cwd, p);
  }
}
