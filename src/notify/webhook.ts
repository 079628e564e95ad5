import { createHmac } from 'node:crypto';
import type { AuditRecord } from '../audit/events.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../shared/logger.js';
import { formatListen } from '../shared/units.js';
import type { Store } from '../store/types.js';

/**
 * Access-request notifications (`requests.webhook`): one signed POST per new request and per
 * decision. It tails the audit log for `request.*` rows, so a decision made by the CLI (another
 * process) is announced by the server like one made here, and it never sits in the path of the
 * request itself: delivery runs on its own, retried with backoff a bounded number of times, and a
 * delivery that still fails is logged and dropped. The receiver checks
 * `X-Gatehouse-Signature: sha256=HEX(HMAC-SHA256(secret, body))`; the body names the audit row
 * (`auditId`), so a replayed delivery is recognisable.
 */
export const SIGNATURE_HEADER = 'x-gatehouse-signature';
const CURSOR_KEY = 'requests.notify.cursor';

export function sign(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface RequestNotice {
  event: string;
  auditId: number;
  at: string;
  id: number;
  user: string;
  /** LOGIN@TARGET, when the event names it (created, approved). */
  target: string | null;
  reason: string;
  durationMs: number | null;
  /** created, approval, approved, denied, expired, cancelled, revoked. */
  decision: string;
  by: string;
  link: string;
}

export function noticeOf(ev: AuditRecord, base: string): RequestNotice {
  const d = ev.data as { request: number; user: string; reason: string; login?: string; target?: string; durationMs?: number };
  return {
    event: ev.type, auditId: ev.id, at: new Date(ev.ts).toISOString(), id: d.request, user: d.user,
    target: d.login !== undefined && d.target !== undefined ? `${d.login}@${d.target}` : null, reason: d.reason,
    durationMs: d.durationMs ?? null, decision: ev.type.slice('request.'.length), by: ev.actor, link: `${base}/requests/${d.request}`,
  };
}

/** The body: our JSON, or for `format: slack` a Slack incoming-webhook message carrying the same fields. */
export function bodyOf(n: RequestNotice, format: 'json' | 'slack'): string {
  if (format === 'json') return JSON.stringify(n);
  const what = n.decision === 'created'
    ? `${n.user} requests ${n.target ?? '?'} for ${Math.round((n.durationMs ?? 0) / 1000)}s: ${n.reason}`
    : `request #${n.id} of ${n.user} ${n.decision} by ${n.by}${n.reason ? `: ${n.reason}` : ''}`;
  // Slack reads `text`; mrkdwn control characters in outside text are escaped as Slack asks.
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return JSON.stringify({ text: `gatehouse: ${esc(what)} <${n.link}|open>`, gatehouse: n });
}

export interface DeliveryOptions {
  url: string;
  secret: string;
  log: Logger;
  /** Waits before each retry; the number of attempts is this length + 1. */
  backoffMs?: readonly number[];
  timeoutMs?: number;
}

/** POST one body, retrying with backoff; resolves true when delivered, false when given up. Never throws. */
export async function deliver(body: string, event: string, o: DeliveryOptions): Promise<boolean> {
  const backoff = o.backoffMs ?? [1_000, 5_000, 30_000];
  for (let attempt = 0; attempt <= backoff.length; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, backoff[attempt - 1]).unref());
    try {
      const res = await fetch(o.url, {
        method: 'POST', body, redirect: 'error', signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: sign(o.secret, body), 'x-gatehouse-event': event },
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
      o.log.warn({ event, status: res.status, attempt: attempt + 1 }, 'request webhook refused the delivery');
    } catch (err) {
      o.log.warn({ event, err: (err as Error).message, attempt: attempt + 1 }, 'request webhook unreachable');
    }
  }
  o.log.error({ event, attempts: backoff.length + 1 }, 'request webhook: delivery given up');
  return false;
}

export interface RequestNotifier {
  /** Tail the audit log once now (tests; also on the timer). */
  poll(): Promise<void>;
  /** Deliveries under way (tests wait for them). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export interface NotifierDeps {
  store: Store;
  config: Config;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  intervalMs?: number;
  backoffMs?: readonly number[];
}

/**
 * The server's request loop: expires pending requests past their time (audited) and, with a
 * webhook configured, announces every request.* audit row. The cursor lives in the store: a restart
 * neither repeats nor skips (the first start begins at the current end of the log).
 */
export async function startRequestNotifier(deps: NotifierDeps): Promise<RequestNotifier> {
  const { store, config, log } = deps;
  const hook = config.requests.webhook;
  const secret = hook ? (deps.env ?? process.env)[hook.secretEnv] : undefined;
  if (hook && !secret) log.error({ secretEnv: hook.secretEnv }, 'requests.webhook: the secret environment variable is empty; nothing is sent unsigned, so no notification is sent');
  const base = config.web.origin ?? `${config.web.tls ? 'https' : 'http'}://${formatListen(config.web.listen)}`;
  let cursor = Number((await store.meta.get(CURSOR_KEY)) ?? (await store.audit.head()).count);
  const inflight = new Set<Promise<unknown>>();
  let running: Promise<void> | null = null;

  const pump = async () => {
    await store.requests.expireDue();
    for (;;) {
      const rows = await store.audit.after(cursor, 200);
      if (rows.length === 0) break;
      for (const r of rows) {
        if (!r.type.startsWith('request.') || !hook || !secret) continue;
        const p = deliver(bodyOf(noticeOf(r, base), hook.format), r.type, { url: hook.url, secret, log, ...(deps.backoffMs ? { backoffMs: deps.backoffMs } : {}) });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      cursor = rows[rows.length - 1]!.id;
      await store.meta.set(CURSOR_KEY, String(cursor));
    }
  };
  const poll = () => (running ??= pump().catch((err: unknown) => log.error({ err }, 'request notifier failed')).finally(() => { running = null; }));
  const timer = setInterval(() => void poll(), deps.intervalMs ?? 500);
  timer.unref();
  return {
    poll,
    async idle() { while (inflight.size > 0) await Promise.allSettled([...inflight]); },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
