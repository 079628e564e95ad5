import fs from 'node:fs';

/**
 * Live view of a recording written by another process (another worker, or another node on the
 * same data directory): the spool file the recorder appends to is followed from an offset, and its
 * complete lines are sent as the in-process LiveHub sends them (header, recent backlog, then each
 * new line; null at the end). Only complete lines are sent: the recorder writes whole lines, so a
 * partial last line is a write still under way and is read again at the next poll.
 *
 * The file is kept open: when the recording closes, the S3 storage may remove the spool copy after
 * upload, and the open descriptor still reads it to its end.
 */
export interface FollowOptions {
  /** How often the file is checked for appended bytes (the recorder flushes at least every second). */
  pollMs?: number;
  /** How often the store is asked whether the channel is still live. */
  checkMs?: number;
  /** A late joiner gets at most this much of the recent recording at once (as the hub's backlog). */
  backlogBytes?: number;
  /** Whether the channel is still live (per the store); false ends the view once the file is read to its end. */
  isLive: () => Promise<boolean>;
  /** A failed liveness check or read: the view ends. */
  onError?: (err: unknown) => void;
}

const POLL_MS = 250;
/** Exported: viewers of one channel share a check this old at most (livecheck.ts). */
export const CHECK_MS = 1_000;
const BACKLOG_BYTES = 512 * 1024;
/** A "line" longer than this is not the recorder's: the view stops rather than buffering it. */
const MAX_LINE_BYTES = 8 * 1024 * 1024;
/** One read takes at most this much (a view far behind catches up over several polls). */
const READ_BYTES = 1024 * 1024;

export interface Follower {
  stop(): void;
}

/**
 * Follow `file`; `send` gets each line (header first), then null once the channel is no longer live
 * and the file is read to its end. Returns null when the file cannot be opened or is not a regular
 * file, or its first line is longer than any recorder line. A header still being written (a long
 * command, JSON-escaped, can make it hundreds of KiB) is read again at each poll until it is whole,
 * or until the channel is no longer live.
 */
export function followSpool(file: string, send: (line: string | null) => void, o: FollowOptions): Follower | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  const pollMs = o.pollMs ?? POLL_MS;
  const checkMs = o.checkMs ?? CHECK_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const close = () => {
    if (stopped) return;
    stopped = true;
    if (timer) clearTimeout(timer);
    fs.closeSync(fd);
  };
  const fail = (err: unknown) => {
    if (stopped) return;
    close();
    o.onError?.(err);
    send(null);
  };

  /** Where the next read starts; -1 while the header line is not complete yet. */
  let offset = -1;
  let pending: Buffer = Buffer.alloc(0);
  /** Send the header and set the backlog start; false while the header line is incomplete, null when it is too long. */
  const start = (): boolean | null => {
    const st = fs.fstatSync(fd);
    const head = readAt(fd, 0, Math.min(st.size, MAX_LINE_BYTES + 1));
    const nl = head.indexOf(0x0a);
    if (nl < 0) return head.length > MAX_LINE_BYTES ? null : false;
    send(head.subarray(0, nl).toString('utf8').trimEnd());
    offset = nl + 1;
    // The backlog starts at a line boundary within the last backlogBytes (as the hub keeps it).
    const from = st.size - (o.backlogBytes ?? BACKLOG_BYTES);
    if (from > offset) {
      const probe = readAt(fd, from - 1, Math.min(MAX_LINE_BYTES, st.size - from + 1));
      const cut = probe.indexOf(0x0a);
      offset = cut < 0 ? st.size : from + cut;
    }
    return true;
  };
  try {
    if (!fs.fstatSync(fd).isFile() || start() === null) { close(); return null; }
  } catch (err) {
    close();
    throw err;
  }

  /** Send every complete line appended since the last read; false when a line is too long. */
  const drain = (): boolean => {
    for (;;) {
      const size = fs.fstatSync(fd).size;
      if (size <= offset) return true;
      const chunk = readAt(fd, offset, Math.min(READ_BYTES, size - offset));
      if (chunk.length === 0) return true;
      offset += chunk.length;
      const data = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      const end = data.lastIndexOf(0x0a) + 1;
      pending = Buffer.from(data.subarray(end));
      if (pending.length > MAX_LINE_BYTES) return false;
      if (end > 0) for (const l of data.subarray(0, end).toString('utf8').split('\n')) if (l !== '' && !stopped) send(l);
      if (stopped) return true;
    }
  };

  let lastCheck = 0;
  let checking = false;
  const tick = () => {
    timer = undefined;
    if (stopped) return;
    try {
      const started = offset >= 0 || start();
      if (started === null) { fail(new Error('live view: the recording header exceeds the limit')); return; }
      if (started && !drain()) { fail(new Error('live view: a recording line exceeds the limit')); return; }
    } catch (err) {
      fail(err);
      return;
    }
    const now = Date.now();
    if (!checking && now - lastCheck >= checkMs) {
      lastCheck = now;
      checking = true;
      o.isLive().then((live) => {
        checking = false;
        if (stopped || live) return;
        // The channel closed: its last lines were written before its row closed.
        try { if (offset >= 0 || start() === true) drain(); } catch { /* what was read is all there is */ }
        close();
        send(null);
      }, (err: unknown) => { checking = false; fail(err); });
    }
    if (!stopped) { timer = setTimeout(tick, pollMs); timer.unref(); }
  };
  tick();
  return { stop: close };
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}
