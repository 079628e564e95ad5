import pg from 'pg';

/** The channel every policy-version bump and kill request notifies (migrations.ts). */
export const CHANGES_CHANNEL = 'gatehouse_changes';

/**
 * Push of "something access depends on changed" from any node or CLI: one dedicated LISTEN client,
 * opened at the first subscriber and reconnected when PostgreSQL goes away. After a reconnect every
 * subscriber is called once, since notifications sent meanwhile were lost (polling stays the net).
 */
export function changesFeed(url: string, opts: { retryMs?: number } = {}) {
  const subs = new Set<() => void>();
  const retryMs = opts.retryMs ?? 1000;
  let client: pg.Client | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  let everConnected = false;
  const fire = () => { for (const fn of [...subs]) { try { fn(); } catch { /* a subscriber's failure is its own */ } } };
  const retry = () => {
    if (closed || timer || subs.size === 0) return;
    timer = setTimeout(() => { timer = null; void connect(); }, retryMs);
    timer.unref();
  };
  const connect = async () => {
    if (closed || client) return;
    const c = new pg.Client({ connectionString: url, keepAlive: true });
    client = c;
    const lost = () => {
      if (client !== c) return;
      client = null;
      c.end().catch(() => undefined);
      retry();
    };
    c.on('error', lost);
    c.on('end', lost);
    c.on('notification', (n) => { if (n.channel === CHANGES_CHANNEL) fire(); });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANGES_CHANNEL}`);
      if (closed) { await c.end().catch(() => undefined); return; }
      if (everConnected) fire();
      everConnected = true;
    } catch {
      lost();
    }
  };
  return {
    subscribe(fn: () => void): () => void {
      subs.add(fn);
      if (!client && !timer) void connect();
      return () => { subs.delete(fn); };
    },
    async close(): Promise<void> {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      await c?.end().catch(() => undefined);
    },
  };
}
