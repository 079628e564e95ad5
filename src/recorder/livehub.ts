/**
 * Live view: the recorder publishes every asciicast line of a live channel here; the web UI
 * subscribes. A late joiner gets the header and the recent lines at once (the player fast-forwards
 * them), then the stream. The backlog is bounded per channel.
 */
const BACKLOG_BYTES = 512 * 1024;

interface Feed {
  header: string;
  /** Recent events as the recorder wrote them (complete lines); decoded only for a subscriber. */
  chunks: Buffer[];
  bytes: number;
  subscribers: Set<(line: string | null) => void>;
}

export class LiveHub {
  private readonly feeds = new Map<string, Feed>();

  private key(sessionId: string, channel: number): string {
    return `${sessionId}/${channel}`;
  }

  open(sessionId: string, channel: number, header: Buffer): void {
    this.feeds.set(this.key(sessionId, channel), { header: header.toString('utf8'), chunks: [], bytes: 0, subscribers: new Set() });
  }

  /** `lines` is kept as it is (the caller hands over a buffer it will not reuse). */
  publish(sessionId: string, channel: number, lines: Buffer): void {
    const f = this.feeds.get(this.key(sessionId, channel));
    if (!f || lines.length === 0) return;
    f.chunks.push(lines);
    f.bytes += lines.length;
    if (f.subscribers.size) for (const line of splitLines(lines)) for (const s of f.subscribers) s(line);
    while (f.bytes > BACKLOG_BYTES && f.chunks.length > 1) f.bytes -= f.chunks.shift()!.length;
  }

  close(sessionId: string, channel: number): void {
    const k = this.key(sessionId, channel);
    const f = this.feeds.get(k);
    if (!f) return;
    for (const s of f.subscribers) s(null);
    this.feeds.delete(k);
  }

  isLive(sessionId: string, channel: number): boolean {
    return this.feeds.has(this.key(sessionId, channel));
  }

  /** Header and backlog now, then each new line; null when the channel ends. Returns unsubscribe. */
  subscribe(sessionId: string, channel: number, send: (line: string | null) => void): (() => void) | null {
    const f = this.feeds.get(this.key(sessionId, channel));
    if (!f) return null;
    send(f.header.trimEnd());
    for (const c of f.chunks) for (const l of splitLines(c)) send(l);
    f.subscribers.add(send);
    return () => f.subscribers.delete(send);
  }
}

function splitLines(lines: Buffer): string[] {
  return lines.toString('utf8').split('\n').filter((l) => l !== '');
}
