import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { draft } from '../audit/events.js';
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

/** The one Origin a live-view upgrade may come from; null when the request names no host. */
export function expectedOrigin(req: FastifyRequest, configured: string | undefined, tls: boolean): string | null {
  if (configured) return configured.toLowerCase();
  const host = req.headers.host;
  return host ? `${tls ? 'https' : 'http'}://${host}`.toLowerCase() : null;
}

export function registerLive(app: FastifyInstance, deps: LiveDeps): void {
  const { config, store, hub } = deps;
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
    if (!hub.isLive(id, ch)) { socket.close(1000, 'not live'); return; }
    // Audited before the first byte is sent: no unaudited watching, even if the audit write fails.
    try {
      const s = await store.sessions.get(id);
      await store.audit.append(draft('web.live_view', `web:${req.webUser!.name}`, { user: req.webUser!.name, source: req.ip, session: id, channel: ch, sessionUser: s?.user ?? '' }));
    } catch (err) {
      deps.log.error({ err }, 'live view: audit write failed');
      socket.close(1011, 'audit unavailable');
      return;
    }
    if (socket.readyState !== socket.OPEN) return;
    const unsubscribe = hub.subscribe(id, ch, (line) => {
      if (line === null) socket.close(1000, 'session ended');
      else socket.send(line);
    });
    if (!unsubscribe) { socket.close(1000, 'not live'); return; }
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
