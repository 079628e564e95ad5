import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type AuthenticatorTransportFuture, type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { draft } from '../audit/events.js';
import { checkSecondFactor, countFailedLogin } from '../auth/secondfactor.js';
import type { Clock } from '../shared/clock.js';
import { GatehouseError } from '../shared/errors.js';
import type { UserRecord } from '../store/types.js';
import { escape, html, page } from './html.js';
import { digits, matching, only, text } from './input.js';
import { expectedOrigin } from './live.js';
import { canLogIn, credentialGeneration, csrfUserInfo, startWebSession } from './login.js';
import type { WebDeps } from './server.js';

/**
 * WebAuthn security keys for the web login, instead of the TOTP code (issue 17, web part).
 * Registering: a logged-in viewer, on /webauthn, with a fresh TOTP code in the same form (a stolen
 * session cookie alone must not add the thief's key). Logging in: POST /login with the right
 * password and an empty code, for a user with a registered key, answers a page carrying a
 * challenge; web/webauthn.js asks the browser for an assertion and posts it to /login/webauthn.
 * Challenges live in this process only: bound to the user, the login attempt and its source
 * address, single use, 2 minutes. Verification (CBOR, COSE, signatures) is @simplewebauthn/server's.
 */
export const CHALLENGE_TTL_MS = 120_000;
/** The most pending challenges kept; the oldest goes first (the login's rate limit keeps it far below). */
const MAX_PENDING = 2000;

interface Pending {
  purpose: 'login' | 'register';
  user: string;
  userId: number;
  challenge: string;
  source: string;
  /** credentialGeneration() when issued: a password change in between ends the attempt. */
  gen: string;
  /**
   * Whether the password before this step was right. A wrong one gets a challenge page too (already
   * audited and counted at POST /login), so the page never tells a right password from a wrong one.
   */
  passwordOk?: boolean;
  expiresAt: number;
  used: boolean;
}

export type Taken = { status: 'ok' | 'expired' | 'used'; p: Pending } | { status: 'unknown' };

/** Pending challenges by attempt id. A used or expired one stays one more TTL, so its reuse is attributed to its user. */
export class WebauthnChallenges {
  private readonly m = new Map<string, Pending>();
  constructor(private readonly clock: Clock, private readonly ttlMs = CHALLENGE_TTL_MS) {}

  issue(p: Omit<Pending, 'expiresAt' | 'used'>): string {
    const now = this.clock.now();
    for (const [k, v] of this.m) if (v.expiresAt + this.ttlMs < now) this.m.delete(k);
    while (this.m.size >= MAX_PENDING) this.m.delete(this.m.keys().next().value!);
    const attempt = randomBytes(24).toString('base64url');
    this.m.set(attempt, { ...p, expiresAt: now + this.ttlMs, used: false });
    return attempt;
  }

  /** Take a challenge once: a second take of the same attempt is `used`, whatever the first was. */
  take(attempt: string, purpose: Pending['purpose']): Taken {
    const p = this.m.get(attempt);
    if (!p || p.purpose !== purpose) return { status: 'unknown' };
    if (p.used) return { status: 'used', p };
    p.used = true;
    return { status: p.expiresAt <= this.clock.now() ? 'expired' : 'ok', p };
  }

  get size(): number {
    return this.m.size;
  }
}

/** The relying party: the UI's origin as the live view decides it, and its host name as the RP ID. */
export function relyingParty(req: FastifyRequest, configured: string | undefined, tls: boolean): { origin: string; rpID: string } | null {
  const origin = expectedOrigin(req, configured, tls);
  if (!origin) return null;
  try {
    return { origin, rpID: new URL(origin).hostname };
  } catch {
    return null;
  }
}

const ATTEMPT = matching(/^[A-Za-z0-9_-]*$/, 64);
const S = {
  page: { querystring: only() },
  register: { querystring: only(), body: only({ _csrf: text(256), attempt: ATTEMPT, code: text(32), response: text(32_768) }) },
  remove: { params: only({ id: { ...digits(15), minLength: 1 } }, ['id']), querystring: only(), body: only({ _csrf: text(256) }) },
  login: { querystring: only(), body: only({ _csrf: text(256), attempt: ATTEMPT, response: text(32_768) }) },
};

function parse<T>(s: string | undefined): T | null {
  try {
    const v = JSON.parse(s ?? '') as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as T) : null;
  } catch {
    return null;
  }
}

type Authenticate = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

export function createWebauthn(deps: WebDeps) {
  const { store, clock, config, dataDir } = deps;
  // Two pools: a logged-in user reloading the registration page cannot push out pending logins.
  const challenges = new WebauthnChallenges(clock);
  const registrations = new WebauthnChallenges(clock);
  const tls = !!config.web.tls;
  const sf = { store, clock, config, masterKey: dataDir.masterKey };

  /**
   * The login's second step, when the code was left empty and the user has a key: the challenge
   * page. Returns false when the user has no key (the TOTP path then refuses the empty code).
   */
  async function step(req: FastifyRequest, reply: FastifyReply, u: UserRecord, passwordOk: boolean): Promise<boolean> {
    const creds = await store.webauthn.list(u.name);
    const rp = relyingParty(req, config.web.origin, tls);
    if (creds.length === 0 || !rp) return false;
    const options = await generateAuthenticationOptions({
      rpID: rp.rpID, userVerification: 'preferred', timeout: CHALLENGE_TTL_MS,
      allowCredentials: creds.map((c) => ({ id: c.credentialId, transports: c.transports as AuthenticatorTransportFuture[] })),
    });
    const attempt = challenges.issue({ purpose: 'login', user: u.name, userId: u.id, challenge: options.challenge, source: req.ip, gen: await credentialGeneration(store, u.name), passwordOk });
    const token = reply.generateCsrf({ userInfo: csrfUserInfo(req) });
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(assertionPage(token, attempt, JSON.stringify(options)));
    return true;
  }

  function register(app: FastifyInstance, authenticate: Authenticate): void {
    const me = async (req: FastifyRequest) => (await store.users.get(req.webUser!.name))!;
    const refused = (reply: FastifyReply, status: number, message: string) => reply.code(status).type('text/plain; charset=utf-8').send(message.slice(0, 200));

    app.get('/webauthn', { preHandler: authenticate, schema: S.page }, async (req, reply) => {
      const u = await me(req);
      const rp = relyingParty(req, config.web.origin, tls);
      if (!rp) return refused(reply, 400, 'no Host header');
      const creds = await store.webauthn.list(u.name);
      const options = await generateRegistrationOptions({
        rpName: 'gatehouse', rpID: rp.rpID, userName: u.name, userID: Buffer.from(`gatehouse-user-${u.id}`), timeout: CHALLENGE_TTL_MS,
        attestationType: 'none', authenticatorSelection: { residentKey: 'discouraged', userVerification: 'preferred' },
        excludeCredentials: creds.map((c) => ({ id: c.credentialId, transports: c.transports as AuthenticatorTransportFuture[] })),
      });
      const attempt = registrations.issue({ purpose: 'register', user: u.name, userId: u.id, challenge: options.challenge, source: req.ip, gen: '' });
      const csrf = req.webUser!.csrf;
      const rows = creds.map((c) => html`<tr><td>#${c.id}</td><td><code>${c.credentialId.slice(0, 16)}…</code></td><td>${new Date(c.createdAt).toISOString()}</td>
        <td>${c.lastUsedAt ? new Date(c.lastUsedAt).toISOString() : 'never'}</td>
        <td><form method="post" action="/webauthn/${c.id}/remove" class="inline"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit">Remove</button></form></td></tr>`);
      const body = html`<p>A security key registered here can replace the TOTP code when you log in to this web UI: leave the code empty and touch the key.</p>
        ${creds.length ? html`<table id="webauthn-keys"><tr><th>#</th><th>Credential</th><th>Registered</th><th>Last used</th><th></th></tr>${rows}</table>` : html`<p id="webauthn-keys">No security key registered.</p>`}
        <h2>Register a security key</h2>
        <form method="post" action="/webauthn/register" id="webauthn-register" data-options="${JSON.stringify(options)}">
        <input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="attempt" value="${attempt}"><input type="hidden" name="response" value="">
        <label>Your TOTP code <input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required></label>
        <button type="submit">Register a security key</button> <span class="webauthn-status" role="status"></span></form>`;
      return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page('Security keys', req.webUser!, body));
    });

    app.post('/webauthn/register', { preValidation: app.csrfProtection, preHandler: authenticate, schema: S.register }, async (req, reply) => {
      const u = await me(req);
      const body = req.body as { attempt?: string; code?: string; response?: string };
      // The fresh second factor first, under the same lockout as a login.
      if ((await store.lockout.lockedUntil(u.id, clock.now())) !== null) return refused(reply, 403, 'your account is locked');
      const totp = await store.totp.get(u.name);
      if (!totp) return refused(reply, 403, 'registering a security key needs an enrolled TOTP');
      const second = await checkSecondFactor(sf, { user: u.name, userId: u.id }, totp, body.code ?? '', req.ip);
      if (!second.ok) return refused(reply, 403, `code refused (${second.reason})`);
      const t = registrations.take(body.attempt ?? '', 'register');
      if (t.status !== 'ok' || t.p.userId !== u.id) return refused(reply, 400, 'the registration expired: reload the page and try again');
      const response = parse<RegistrationResponseJSON>(body.response);
      const rp = relyingParty(req, config.web.origin, tls);
      if (!response || !rp) return refused(reply, 400, 'no security key response');
      let info;
      try {
        const v = await verifyRegistrationResponse({ response, expectedChallenge: t.p.challenge, expectedOrigin: rp.origin, expectedRPID: rp.rpID, requireUserVerification: false });
        info = v.verified ? v.registrationInfo : null;
      } catch {
        info = null;
      }
      if (!info) return refused(reply, 400, 'the security key response was refused');
      const transports = (response.response.transports ?? []).filter((x) => typeof x === 'string').slice(0, 8).map((x) => String(x).slice(0, 32));
      try {
        await store.webauthn.add(u.name, { credentialId: info.credential.id, publicKey: Buffer.from(info.credential.publicKey), counter: info.credential.counter, transports }, { actor: `web:${u.name}` });
      } catch (err) {
        if (err instanceof GatehouseError) return refused(reply, 409, err.message);
        throw err;
      }
      // Like a password change: every other session of this user ends; this one goes on.
      req.session.set('gen', await credentialGeneration(store, u.name));
      return reply.code(303).header('location', '/webauthn').send();
    });

    app.post('/webauthn/:id/remove', { preValidation: app.csrfProtection, preHandler: authenticate, schema: S.remove }, async (req, reply) => {
      const u = await me(req);
      try {
        await store.webauthn.remove(u.name, Number((req.params as { id: string }).id), { actor: `web:${u.name}` });
      } catch (err) {
        if (err instanceof GatehouseError) return refused(reply, 404, 'not found');
        throw err;
      }
      req.session.set('gen', await credentialGeneration(store, u.name));
      return reply.code(303).header('location', '/webauthn').send();
    });

    app.post('/login/webauthn', {
      config: { rateLimit: { max: 10, timeWindow: '1 minute' } },
      preValidation: app.csrfProtection,
      schema: S.login,
    }, async (req, reply) => {
      const body = req.body as { attempt?: string; response?: string };
      const source = req.ip;
      const t = challenges.take(body.attempt ?? '', 'login');
      const who = t.status === 'unknown' ? null : t.p;
      // Every refusal is audited; once the attempt names a user, it counts toward their lockout
      // like a wrong TOTP code (the password was right to get here).
      const fail = async (reason: string, count = true) => {
        await store.audit.append(draft('web.login_failed', 'system', { user: who?.user ?? '', source, reason }));
        if (who && count) await countFailedLogin(sf, { user: who.user, userId: who.userId }, source);
        return reply.code(303).header('location', '/login?error=1').send();
      };
      if (t.status === 'unknown') return fail('webauthn_unknown_attempt', false);
      if (t.status === 'used') return fail('webauthn_challenge_reused');
      if (t.status === 'expired') return fail('webauthn_challenge_expired');
      const p = t.p;
      // Audited and counted when the password was typed (POST /login); the key cannot make up for it.
      if (p.passwordOk !== true) return fail('wrong_password', false);
      if (p.source !== source) return fail('webauthn_other_source');
      const u = await store.users.get(p.user);
      if (!u || u.id !== p.userId) return fail('unknown_user', false);
      if (!canLogIn(u)) return fail(u.disabled ? 'user_disabled' : 'not_auditor');
      if ((await store.lockout.lockedUntil(u.id, clock.now())) !== null) return fail('locked', false);
      if ((await credentialGeneration(store, u.name)) !== p.gen) return fail('changed_during_login');
      const response = parse<AuthenticationResponseJSON>(body.response);
      if (!response || typeof response.id !== 'string') return fail('webauthn_bad_response');
      const cred = await store.webauthn.byCredentialId(response.id);
      if (!cred || cred.userId !== u.id) return fail('webauthn_unknown_credential');
      const rp = relyingParty(req, config.web.origin, tls);
      if (!rp) return fail('webauthn_bad_response');
      let newCounter: number | null = null;
      try {
        const v = await verifyAuthenticationResponse({
          response, expectedChallenge: p.challenge, expectedOrigin: rp.origin, expectedRPID: rp.rpID, requireUserVerification: false,
          credential: { id: cred.credentialId, publicKey: new Uint8Array(cred.publicKey), counter: cred.counter, transports: cred.transports as AuthenticatorTransportFuture[] },
        });
        if (v.verified) newCounter = v.authenticationInfo.newCounter;
      } catch {
        newCounter = null;
      }
      if (newCounter === null) return fail('webauthn_bad_assertion');
      // The library compares with the counter read above; the claim settles a race between two logins.
      if (!(await store.webauthn.claimCounter(cred.credentialId, newCounter, clock.now()))) return fail('webauthn_counter');
      await store.lockout.clear(u.id);
      return startWebSession(req, reply, store, u, 'webauthn');
    });
  }

  return { step, register, challenges };
}

function assertionPage(csrfToken: string, attempt: string, options: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Security key · gatehouse</title><link rel="stylesheet" href="/static/app.css"></head>
<body><main class="login"><h1>gatehouse</h1>
<form method="post" action="/login/webauthn" id="webauthn-login" data-options="${escape(options)}">
<input type="hidden" name="_csrf" value="${escape(csrfToken)}"><input type="hidden" name="attempt" value="${escape(attempt)}"><input type="hidden" name="response" value="">
<p>Touch your security key to log in.</p><p class="webauthn-status" role="status"></p>
<button type="submit">Use the security key</button></form>
<p><a href="/login">Log in with a TOTP code instead</a></p></main>
<script src="/static/webauthn.js"></script></body></html>`;
}
