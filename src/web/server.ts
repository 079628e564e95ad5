import { createHash, timingSafeEqual } from 'node:crypto';
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
import { GatehouseError } from '../shared/errors.js';
import { verifyPassword } from '../auth/password.js';
import type { Config } from '../config/schema.js';
import type { DataDir } from '../datadir/datadir.js';
import type { LiveHub } from '../recorder/livehub.js';
import { hostKeyVerifier, verifyRecordings } from '../recorder/verify.js';
import { createRecordingStorage, type RecordingStorage } from '../recorder/storage/index.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Store } from '../store/types.js';
import { AJV_OPTIONS, frameworkErrors, only, registerInputGate } from './input.js';
import { registerLive } from './live.js';
import { canView, credentialGeneration, csrfUserInfo, registerLogin, type PasswordVerifier } from './login.js';
import { registerPages } from './pages.js';
import { registerRequests } from './requests.js';
import { registerFleet } from './fleet.js';
import { fleetMetrics } from '../fleet/metrics.js';
import { createWebauthn } from './webauthn.js';

export { canView };

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
  /** More /metrics lines (ops/metrics.ts: lockouts, free space, retention). */
  metrics?: () => Promise<string[]>;
  /** The password check (tests spy on it); default: scrypt from auth/password. */
  verifyPassword?: PasswordVerifier;
  /** Where recordings are read (the server's own, which also uploads); default: built from the config. */
  recordings?: RecordingStorage;
}

export interface WebUser {
  name: string;
  roles: string[];
  admin: boolean;
  /** This user's CSRF token for the forms of the page being rendered (log out, admin actions). */
  csrf: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    webUser?: WebUser;
  }
}

declare module 'fastify' {
  interface Session {
    user?: string;
    /** credentialGeneration() at login. */
    gen?: string;
  }
}

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
/** A web session lasts 8 h from login, however active (no sliding renewal). */
export const SESSION_TTL_MS = 8 * 3600_000;
export const SESSION_COOKIE = 'gh_session';

/**
 * Web sessions in the store. A row exists only for a logged-in user (anonymous visitors store
 * nothing); expired rows are deleted whenever a session is written (at each login), so the table
 * holds at most the sessions of the last 8 h.
 */
function sessionStore(store: Store, clock: Clock) {
  return {
    set(sid: string, s: Record<string, unknown>, cb: (err?: unknown) => void) {
      const now = clock.now();
      store.webSessions.purgeExpired(now).then(() => store.webSessions.set(sid, s, now + SESSION_TTL_MS)).then(() => cb(), cb);
    },
    get(sid: string, cb: (err: unknown, s?: Record<string, unknown> | null) => void) {
      store.webSessions.get(sid, clock.now()).then((s) => cb(null, s), cb);
    },
    destroy(sid: string, cb: (err?: unknown) => void) {
      store.webSessions.destroy(sid).then(() => cb(), cb);
    },
  };
}

export async function createWebServer(deps: WebDeps): Promise<FastifyInstance> {
  const { config, store, dataDir } = deps;
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
  const metricsToken = readMetricsToken(config);
  const app = Fastify({ logger: false, trustProxy: false, ajv: AJV_OPTIONS, frameworkErrors, ...(https ? { https } : {}) }) as unknown as FastifyInstance;
  const secret = (purpose: string) => createHash('sha256').update(dataDir.masterKey).update(`gatehouse web ${purpose}`).digest('hex');

  registerInputGate(app, deps.log);
  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"], scriptSrc: ["'self'", "'wasm-unsafe-eval'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"], objectSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'self'"],
      },
    },
  });
  await app.register(cookie, { secret: secret('cookie') });
  await app.register(session, {
    secret: secret('session'),
    cookieName: SESSION_COOKIE,
    cookie: { httpOnly: true, sameSite: 'strict', secure: !!tls, path: '/', maxAge: SESSION_TTL_MS },
    // Nothing is stored until someone logs in, and page views do not rewrite the row.
    saveUninitialized: false,
    rolling: false,
    store: sessionStore(store, deps.clock) as never,
  });
  // CSRF: a signed double-submit cookie (no stored session needed, so the login form stores
  // nothing), each token bound to who is logged in.
  await app.register(csrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: 'gh_csrf',
    cookieOpts: { httpOnly: true, sameSite: 'strict', secure: !!tls, path: '/', signed: true },
    csrfOpts: { hmacKey: secret('csrf') },
    getUserInfo: csrfUserInfo,
    getToken: (req) => {
      const fromBody = (req.body as Record<string, unknown> | undefined)?._csrf;
      const token = fromBody ?? req.headers['x-csrf-token'];
      return typeof token === 'string' ? token : undefined;
    },
  });
  await app.register(formbody);
  await app.register(rateLimit, { global: false });
  await app.register(websocket, { options: { maxPayload: 1 << 16, handleProtocols: (p: Set<string>) => (p.has('v2.asciicast') ? 'v2.asciicast' : false) } });
  const require = createRequire(import.meta.url);
  await app.register(fstatic, { root: path.dirname(require.resolve('asciinema-player/dist/bundle/asciinema-player.min.js')), prefix: '/vendor/', decorateReply: false, index: false });
  await app.register(fstatic, { root: path.join(ROOT, 'web'), prefix: '/static/', decorateReply: false, index: false });

  // Health and metrics: no login, no names (per-host gauges only behind web.metricsTokenEnv).
  const noQuery = { schema: { querystring: only() } };
  app.get('/healthz', noQuery, async () => ({ status: 'ok' }));
  app.get('/metrics', noQuery, async (req, reply) => {
    if (metricsToken && !bearerIs(req.headers.authorization, metricsToken)) {
      return reply.code(401).header('www-authenticate', 'Bearer').type('text/plain').send('a bearer token is required (web.metricsTokenEnv)\n');
    }
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
      ...(deps.metrics ? await deps.metrics() : []),
      ...(metricsToken ? await fleetMetrics(store) : []),
      '',
    ].join('\n');
  });

  // Who is asking: an enabled auditor or admin, checked on every request (disabling logs out).
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    const name = req.session.get('user');
    const u = name ? await store.users.get(name) : null;
    const gen = u ? await credentialGeneration(store, u.name) : null;
    // An approver-only account is signed in for the Requests page alone: elsewhere it is told so and
    // stays signed in (its session is checked like any other on /requests).
    if (u && !u.disabled && u.roles.includes('approver') && !canView(u) && req.session.get('gen') === gen) {
      return reply.code(403).type('text/plain').send('approvers see the Requests page only: /requests');
    }
    if (!u || !canView(u) || req.session.get('gen') !== gen) {
      if (name) await req.session.destroy();
      return reply.code(req.method === 'GET' && !req.headers.upgrade ? 302 : 401).header('location', '/login').send();
    }
    req.webUser = { name: u.name, roles: u.roles, admin: u.roles.includes('admin'), csrf: reply.generateCsrf({ userInfo: csrfUserInfo(req) }) };
  };

  const webauthn = createWebauthn(deps);
  await registerLogin(app, { ...deps, authenticate, verifyPassword: deps.verifyPassword ?? verifyPassword, webauthnStep: webauthn.step });
  webauthn.register(app, authenticate);
  // A live view outlives the request that opened it: it asks this again every few seconds.
  const stillSignedIn = async (sid: string, name: string, gen: string | undefined): Promise<boolean> => {
    if ((await store.webSessions.get(sid, deps.clock.now())) === null) return false;
    const u = await store.users.get(name);
    return !!u && canView(u) && gen === (await credentialGeneration(store, name));
  };
  registerLive(app, { ...deps, authenticate, stillSignedIn });
  const recordings = deps.recordings ?? createRecordingStorage(deps.config, dataDir);
  await registerPages(app, { ...deps, recordings, authenticate, verify: async (id) => verifyRecordings(store, recordings, hostKeyVerifier(dataDir.hostKey), id, { retention: deps.config.recording.retention }) });
  registerRequests(app, deps);
  registerFleet(app, { store, authenticate });
  return app;
}

/** The /metrics bearer token from the environment variable config names; a missing one stops the start. */
function readMetricsToken(config: Config): Buffer | null {
  const name = config.web.metricsTokenEnv;
  if (name === undefined) return null;
  const v = process.env[name];
  if (!v || v.length < 16) {
    throw new GatehouseError('GH_CONFIG', `web.metricsTokenEnv: the environment variable ${name} must hold the /metrics bearer token (16 characters or more)`, {
      hint: `export ${name}=$(openssl rand -hex 24) for the server and give the same token to Prometheus (authorization.credentials)`,
    });
  }
  return createHash('sha256').update(v).digest();
}

function bearerIs(header: string | undefined, tokenDigest: Buffer): boolean {
  const m = /^Bearer (\S+)$/i.exec(header ?? '');
  if (!m) return false;
  // Compared as digests: equal lengths for timingSafeEqual, and no early exit on the first byte.
  return timingSafeEqual(createHash('sha256').update(m[1]!).digest(), tokenDigest);
}
