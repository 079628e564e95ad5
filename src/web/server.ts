import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import session from '@fastify/session';
import csrf from '@fastify/csrf-protection';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import fstatic from '@fastify/static';
import formbody from '@fastify/formbody';
import websocket from '@fastify/websocket';
import { draft } from '../audit/events.js';
import { GatehouseError } from '../shared/errors.js';
import { verifyPassword } from '../auth/password.js';
import { checkSecondFactor } from '../auth/secondfactor.js';
import type { Config } from '../config/schema.js';
import type { DataDir } from '../datadir/datadir.js';
import type { LiveHub } from '../recorder/livehub.js';
import { hostKeyVerifier, verifyRecordings } from '../recorder/verify.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Store, UserRecord } from '../store/types.js';
import { registerPages } from './pages.js';

/**
 * The auditors' web UI, in the same process as the SSH listener. Request lifecycle:
 *   helmet (CSP, headers) → session (server-side, in the store) → auth hook (user still enabled,
 *   auditor or admin; else logged out) → CSRF on every POST → route (admins only for changes).
 */
export interface WebDeps {
  config: Config;
  store: Store;
  clock: Clock;
  log: Logger;
  dataDir: DataDir;
  hub: LiveHub;
  liveCount: () => number;
  liveBytes: () => number;
}

export interface WebUser {
  name: string;
  roles: string[];
  admin: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    webUser?: WebUser;
  }
}

declare module 'fastify' {
  interface Session {
    user?: string;
  }
}

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const SESSION_TTL_MS = 8 * 3600_000;

function sessionStore(store: Store, clock: Clock) {
  return {
    set(sid: string, s: Record<string, unknown>, cb: (err?: unknown) => void) {
      store.webSessions.set(sid, s, clock.now() + SESSION_TTL_MS).then(() => cb(), cb);
    },
    get(sid: string, cb: (err: unknown, s?: Record<string, unknown> | null) => void) {
      store.webSessions.get(sid, clock.now()).then((s) => cb(null, s), cb);
    },
    destroy(sid: string, cb: (err?: unknown) => void) {
      store.webSessions.destroy(sid).then(() => cb(), cb);
    },
  };
}

export function canView(u: UserRecord): boolean {
  return !u.disabled && (u.roles.includes('auditor') || u.roles.includes('admin'));
}

export async function createWebServer(deps: WebDeps): Promise<FastifyInstance> {
  const { config, store, clock, dataDir } = deps;
  const tls = config.web.tls;
  const readTls = (file: string, key: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new GatehouseError('GH_CONFIG', `web.tls.${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? err})`, {
        hint: 'give PEM files readable by this user, or remove web.tls to serve plain HTTP on 127.0.0.1',
      });
    }
  };
  const https = tls ? { cert: readTls(tls.cert, 'cert'), key: readTls(tls.key, 'key') } : null;
  const app = Fastify({ logger: false, trustProxy: false, ...(https ? { https } : {}) }) as unknown as FastifyInstance;

  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"], scriptSrc: ["'self'", "'wasm-unsafe-eval'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"], objectSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'self'"],
      },
    },
  });
  await app.register(cookie);
  await app.register(session, {
    secret: createHash('sha256').update(dataDir.masterKey).update('gatehouse web session').digest('hex'),
    cookieName: 'gh_session',
    cookie: { httpOnly: true, sameSite: 'strict', secure: !!tls, path: '/', maxAge: SESSION_TTL_MS },
    saveUninitialized: false,
    store: sessionStore(store, clock) as never,
  });
  await app.register(csrf, { sessionPlugin: '@fastify/session', getToken: (req) => (req.body as Record<string, string> | undefined)?._csrf ?? (req.headers['x-csrf-token'] as string | undefined) });
  await app.register(formbody);
  await app.register(rateLimit, { global: false });
  await app.register(websocket, { options: { maxPayload: 1 << 16, handleProtocols: (p: Set<string>) => (p.has('v2.asciicast') ? 'v2.asciicast' : false) } });
  const require = createRequire(import.meta.url);
  await app.register(fstatic, { root: path.dirname(require.resolve('asciinema-player/dist/bundle/asciinema-player.min.js')), prefix: '/vendor/', decorateReply: false, index: false });
  await app.register(fstatic, { root: path.join(ROOT, 'web'), prefix: '/static/', decorateReply: false, index: false });

  // Health and metrics: no login, no names.
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_req, reply) => {
    const [authFailures, recFailures, ended] = await Promise.all([
      store.audit.count('auth.failure'), store.audit.count('recording.failed'), store.sessions.bytesRelayed(),
    ]);
    const bytes = ended + deps.liveBytes();
    reply.type('text/plain; version=0.0.4');
    return [
      '# HELP gatehouse_live_sessions Live operator connections.', '# TYPE gatehouse_live_sessions gauge', `gatehouse_live_sessions ${deps.liveCount()}`,
      '# HELP gatehouse_auth_failures_total Refused SSH authentication attempts.', '# TYPE gatehouse_auth_failures_total counter', `gatehouse_auth_failures_total ${authFailures}`,
      '# HELP gatehouse_bytes_relayed_total Bytes relayed in both directions.', '# TYPE gatehouse_bytes_relayed_total counter', `gatehouse_bytes_relayed_total ${bytes}`,
      '# HELP gatehouse_recording_failures_total Recordings that could not be opened or written.', '# TYPE gatehouse_recording_failures_total counter', `gatehouse_recording_failures_total ${recFailures}`,
      '',
    ].join('\n');
  });

  // Who is asking: an enabled auditor or admin, checked on every request (disabling logs out).
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    const name = req.session.get('user');
    const u = name ? await store.users.get(name) : null;
    if (!u || !canView(u)) {
      if (name) await req.session.destroy();
      return reply.code(req.method === 'GET' && !req.headers.upgrade ? 302 : 401).header('location', '/login').send();
    }
    req.webUser = { name: u.name, roles: u.roles, admin: u.roles.includes('admin') };
  };

  app.get('/login', async (req, reply) => {
    const token = reply.generateCsrf();
    reply.type('text/html');
    return loginPage(token, (req.query as { error?: string }).error);
  });

  app.post('/login', { config: { rateLimit: { max: 10, timeWindow: '1 minute' } }, preValidation: app.csrfProtection }, async (req, reply) => {
    const body = (req.body ?? {}) as { username?: string; password?: string; code?: string };
    const username = String(body.username ?? '').slice(0, 64);
    const source = req.ip;
    const fail = async (reason: string) => {
      await store.audit.append(draft('web.login_failed', 'system', { user: username, source, reason }));
      return reply.code(303).header('location', '/login?error=1').send();
    };
    const u = await store.users.get(username);
    if (!u) return fail('unknown_user');
    if (!canView(u)) return fail(u.disabled ? 'user_disabled' : 'not_auditor');
    const hash = await store.users.passwordHash(u.name);
    if (!hash || !(await verifyPassword(String(body.password ?? ''), hash))) return fail('wrong_password');
    // The same lockout as the SSH login: locked users are refused, and wrong codes count.
    if ((await store.lockout.lockedUntil(u.id, clock.now())) !== null) return fail('locked');
    const totp = await store.totp.get(u.name);
    if (!totp) return fail('no_totp');
    const second = await checkSecondFactor({ store, clock, config, masterKey: dataDir.masterKey }, { user: u.name, userId: u.id }, totp, String(body.code ?? ''), source);
    if (!second.ok) return fail(second.reason);
    await req.session.regenerate();
    req.session.set('user', u.name);
    await store.audit.append(draft('web.login', 'system', { user: u.name, source }));
    return reply.code(303).header('location', '/sessions').send();
  });

  app.post('/logout', { preValidation: app.csrfProtection, preHandler: authenticate }, async (req, reply) => {
    await store.audit.append(draft('web.logout', 'system', { user: req.webUser!.name, source: req.ip }));
    await req.session.destroy();
    return reply.code(303).header('location', '/login').send();
  });

  await registerPages(app, { ...deps, authenticate, verify: async (id) => verifyRecordings(store, dataDir.paths.recordings, hostKeyVerifier(dataDir.hostKey), id) });
  return app;
}

function loginPage(csrfToken: string, error?: string): string {
  const err = error ? '<p class="error">Login refused. Check your user name, password and code.</p>' : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · gatehouse</title><link rel="stylesheet" href="/static/app.css"></head>
<body><main class="login"><h1>gatehouse</h1>${err}
<form method="post" action="/login">
<input type="hidden" name="_csrf" value="${csrfToken.replace(/"/g, '&quot;')}">
<label>User <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required></label>
<button type="submit">Log in</button></form></main></body></html>`;
}
