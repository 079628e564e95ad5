import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { draft } from '../audit/events.js';
import { LiveSource } from '../recorder/livesource.js';
import { createRecordingStorage } from '../recorder/storage/index.js';
import { digits, only, SESSION_ID } from './input.js';
import type { WebDeps } from './server.js';

/**
 * Live view over WebSocket. Browsers send cookies with a WebSocket upgrade from any page, and
 * SameSite does not cover every case (a sibling subdomain is "same site"), so the upgrade is
 * accepted only from the UI's own origin: `web.origin` when set (behind a reverse proxy), else
 * the scheme we serve plus the Host the browser asked for. Starting to watch is audited.
 */
interface LiveDeps extends WebDeps {
  authenticate: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** Whether the web session that opened a view is still logged in with the same credentials. */
  stillSignedIn: (sid: string, user: string, gen: string | undefined) => Promise<boolean>;
}

/** How often an open live view checks that its viewer is still signed in (logout, disable, reset). */
const RECHECK_MS = 2_000;
/**
 * A viewer that reads slower than the session writes is cut off (1013) once this much waits in its
 * socket, rather than held in this process's memory without bound.
 */
export const LIVE_MAX_BUFFERED = 4 * 1024 * 1024;
/** Concurrent live views per web session and per process: each holds a subscription and a buffer. */
export const LIVE_PER_SESSION = 8;
export const LIVE_PER_PROCESS = 200;

/** The one Origin a live-view upgrade may come from; null when the request names no host. */
export function expectedOrigin(req: FastifyRequest, configured: string | undefined, tls: boolean): string | null {
  if (configured) return configured.toLowerCase();
  const host = req.headers.host;
  return host ? `${tls ? 'https' : 'http'}://${host}`.toLowerCase() : null;
}

/** A WebSocket close reason is at most 123 bytes (UTF-8). */
export function liveOnNode(node: string): string {
  let reason = `live on node ${node}`;
  while (Buffer.byteLength(reason) > 120) reason = reason.slice(0, -1);
  return reason;
}

export function registerLive(app: FastifyInstance, deps: LiveDeps): void {
  const { config, store, hub } = deps;
  // Sessions recorded by this process come from the hub; those of other workers or nodes sharing
  // the data directory are followed in their spool file (recorder/livesource.ts).
  const source = new LiveSource(hub, store, deps.recordings ?? createRecordingStorage(config, deps.dataDir));
  // Views held open, counted from the upgrade to the socket's close (refused ones are not audited).
  let viewsInProcess = 0;
  const viewsBySession = new Map<string, number>();
  const sameOrigin = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.ws) return; // a plain GET is answered 404 by the WebSocket plugin
    const want = expectedOrigin(req, config.web.origin, !!config.web.tls);
    const origin = req.headers.origin;
    if (!want || typeof origin !== 'string' || origin.toLowerCase() !== want) {
      return reply.code(403).type('text/plain; charset=utf-8').send('live view: cross-origin WebSocket refused');
    }
  };

  app.get('/live/:id/:channel', {
    websocket: true,
    onRequest: sameOrigin,
    preHandler: deps.authenticate,
    schema: { params: only({ id: SESSION_ID, channel: { ...digits(6), minLength: 1 } }, ['id', 'channel']), querystring: only() },
  }, async (socket, req) => {
    const { id, channel } = req.params as { id: string; channel: string };
    const ch = Number(channel);
    // Checked and taken in one synchronous step: concurrent upgrades cannot all pass the check.
    const viewSid = req.session.sessionId;
    const held = viewsBySession.get(viewSid) ?? 0;
    if (held >= LIVE_PER_SESSION) { socket.close(1013, `too many live views (at most ${LIVE_PER_SESSION} per sign-in)`); return; }
    if (viewsInProcess >= LIVE_PER_PROCESS) { socket.close(1013, 'too many live views on this server; try again later'); return; }
    viewsInProcess++;
    viewsBySession.set(viewSid, held + 1);
    socket.once('close', () => {
      viewsInProcess--;
      const n = (viewsBySession.get(viewSid) ?? 1) - 1;
      if (n > 0) viewsBySession.set(viewSid, n); else viewsBySession.delete(viewSid);
    });
    let where;
    try {
      where = await source.where(id, ch);
    } catch (err) {
      deps.log.error({ err }, 'live view: the store cannot say where the session is');
      socket.close(1011, 'check failed');
      return;
    }
    if (!where) { socket.close(1000, 'not live'); return; }
    if (where.at === 'node') { socket.close(1000, liveOnNode(where.node)); return; }
    // Audited before the first byte is sent: no unaudited watching, even if the audit write fails.
    try {
      const s = await store.sessions.get(id);
      await store.audit.append(draft('web.live_view', `web:${req.webUser!.name}`, { user: req.webUser!.name, source: req.ip, session: id, channel: ch, sessionUser: s?.user ?? '', via: where.at }));
    } catch (err) {
      deps.log.error({ err }, 'live view: audit write failed');
      socket.close(1011, 'audit unavailable');
      return;
    }
    if (socket.readyState !== socket.OPEN) return;
    const send = (line: string | null) => {
      if (socket.readyState !== socket.OPEN) return;
      if (line === null) socket.close(1000, 'session ended');
      else if (socket.bufferedAmount > LIVE_MAX_BUFFERED) socket.close(1013, 'viewer too slow');
      else socket.send(line);
    };
    let sub;
    try {
      sub = await source.subscribe(id, ch, send);
    } catch (err) {
      deps.log.error({ err }, 'live view: the recording cannot be followed');
      socket.close(1011, 'check failed');
      return;
    }
    if (!sub) { socket.close(1000, 'not live'); return; }
    if (sub.at === 'node') { socket.close(1000, liveOnNode(sub.node)); return; }
    const unsubscribe = sub.stop;
    // The socket may have closed while the subscription was being set up.
    if (socket.readyState !== socket.OPEN) { unsubscribe(); return; }
    const sid = req.session.sessionId;
    const viewer = req.webUser!.name;
    const gen = req.session.get('gen');
    const recheck = setInterval(() => {
      deps.stillSignedIn(sid, viewer, gen).then((ok) => { if (!ok) socket.close(1008, 'signed out'); }, () => socket.close(1011, 'check failed'));
    }, RECHECK_MS);
    recheck.unref();
    socket.on('close', () => { clearInterval(recheck); unsubscribe(); });
  });
}
