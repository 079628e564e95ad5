import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { draft } from '../audit/events.js';
import { hashPassword } from '../auth/password.js';
import { checkSecondFactor, countFailedLogin } from '../auth/secondfactor.js';
import type { Store, UserRecord } from '../store/types.js';
import { matching, only, text } from './input.js';
import type { WebDeps } from './server.js';

/**
 * Log in (password + TOTP) and log out. Every answer to a login attempt costs the same password
 * work, whether or not the user exists or may use the web UI, so the time taken does not tell an
 * outsider which user names exist (the scrypt derivation is ~100 ms; everything else is < 1 ms).
 * A wrong password counts toward the user's lockout exactly like a wrong TOTP code.
 */
export type PasswordVerifier = (password: string, storedHash: string) => Promise<boolean>;

interface LoginDeps extends WebDeps {
  verifyPassword: PasswordVerifier;
  authenticate: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** The security-key step (web/webauthn.ts) for a right password and an empty code; false: the user has no key. */
  /** The security-key step; `passwordOk` false gives the same page, whose assertion then fails. */
  webauthnStep?: (req: FastifyRequest, reply: FastifyReply, u: UserRecord, passwordOk: boolean) => Promise<boolean>;
}

/** The web session after a complete login, whichever second factor it took. */
export async function startWebSession(req: FastifyRequest, reply: FastifyReply, store: Store, u: UserRecord, method: 'totp' | 'webauthn'): Promise<FastifyReply> {
  await req.session.regenerate();
  req.session.set('user', u.name);
  req.session.set('gen', await credentialGeneration(store, u.name));
  await store.audit.append(draft('web.login', 'system', { user: u.name, source: req.ip, method }));
  return reply.code(303).header('location', canView(u) ? '/sessions' : '/requests').send();
}

/**
 * What the login proved, as one value: the password hash and the TOTP enrolment. A web session
 * holds the value from its login; a password change or a TOTP reset changes it, and every session
 * logged in before ends at its next request (the web's side of "revoking happens in one place").
 */
export async function credentialGeneration(store: Store, user: string): Promise<string> {
  const [hash, totp, keys] = await Promise.all([store.users.passwordHash(user), store.totp.get(user), store.webauthn.list(user)]);
  // Registering or removing a WebAuthn credential changes it too (not a counter update). Without
  // one, the value is the one from before WebAuthn: an upgrade logs nobody out.
  const creds = keys.length ? `\u0000${keys.map((k) => k.credentialId).sort().join(',')}` : '';
  return createHash('sha256').update(`${hash ?? ''}\u0000${totp?.createdAt ?? ''}${creds}`).digest('hex').slice(0, 32);
}

export function canView(u: UserRecord): boolean {
  return !u.disabled && (u.roles.includes('auditor') || u.roles.includes('admin'));
}

/** Who may log in: viewers, and approvers (who see the Requests page only: web/requests.ts). */
export function canLogIn(u: UserRecord): boolean {
  return canView(u) || (!u.disabled && u.roles.includes('approver'));
}

/** A hash with the same parameters as real ones, of a password nobody knows: the stand-in for users without one. */
export function dummyPasswordHash(): Promise<string> {
  return hashPassword(randomBytes(24).toString('base64'));
}

const loginBody = only({ _csrf: text(256), username: matching(/^[^\u0000-\u001f\u007f-\u009f]*$/, 64), password: text(1024), code: text(32) });

export async function registerLogin(app: FastifyInstance, deps: LoginDeps): Promise<void> {
  const { store, clock, config, dataDir } = deps;
  // Made once at start (one derivation), awaited at the first login that needs it.
  const dummy = dummyPasswordHash();
  dummy.catch(() => undefined);

  app.get('/login', { schema: { querystring: only({ error: text(8) }) } }, async (req, reply) => {
    // The token is bound to a signed cookie, not to a stored session: an anonymous visit stores nothing.
    const token = reply.generateCsrf({ userInfo: csrfUserInfo(req) });
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
    return loginPage(token, (req.query as { error?: string }).error);
  });

  app.post('/login', {
    config: { rateLimit: { max: 10, timeWindow: '1 minute' } },
    preValidation: app.csrfProtection,
    schema: { body: loginBody },
  }, async (req, reply) => {
    const body = req.body as { username?: string; password?: string; code?: string };
    const username = body.username ?? '';
    const source = req.ip;
    const fail = async (reason: string) => {
      await store.audit.append(draft('web.login_failed', 'system', { user: username, source, reason }));
      return reply.code(303).header('location', '/login?error=1').send();
    };
    const u = username ? await store.users.get(username) : null;
    const stored = u && canLogIn(u) ? await store.users.passwordHash(u.name) : null;
    // Always one derivation, against the dummy when there is nothing real to compare with.
    const passwordOk = (await deps.verifyPassword(body.password ?? '', stored ?? (await dummy))) && stored !== null;
    if (!u) return fail('unknown_user');
    if (!canLogIn(u)) return fail(u.disabled ? 'user_disabled' : 'not_auditor');
    // The same lockout as the SSH login: a locked user is refused whatever they present.
    if ((await store.lockout.lockedUntil(u.id, clock.now())) !== null) return fail('locked');
    if (!passwordOk) {
      // A wrong password is typed by anyone who can reach this form, with no key and no code: it
      // counts toward the shared lockout only for accounts that cannot use SSH, or anyone could
      // lock an admin who is also an operator out of the bastion. Those are held back by the rate
      // limit, and their wrong TOTP codes (after a right password) count like any other.
      if (!u.roles.includes('operator')) await countFailedLogin({ store, clock, config, masterKey: dataDir.masterKey }, { user: u.name, userId: u.id }, source);
      // A user with a security key who left the code empty gets the key's page whatever the
      // password was: which page comes back must not tell a right password from a wrong one.
      if (!(body.code ?? '').trim() && deps.webauthnStep) {
        await store.audit.append(draft('web.login_failed', 'system', { user: username, source, reason: 'wrong_password' }));
        if (await deps.webauthnStep(req, reply, u, false)) return reply;
        return reply.code(303).header('location', '/login?error=1').send();
      }
      return fail('wrong_password');
    }
    if (!(body.code ?? '').trim() && deps.webauthnStep) {
      // (a boolean, not the reply: a reply is a thenable, and awaiting it gives undefined)
      if (await deps.webauthnStep(req, reply, u, true)) return reply;
    }
    const totp = await store.totp.get(u.name);
    if (!totp) return fail('no_totp');
    const second = await checkSecondFactor({ store, clock, config, masterKey: dataDir.masterKey }, { user: u.name, userId: u.id }, totp, body.code ?? '', source);
    if (!second.ok) return fail(second.reason);
    return startWebSession(req, reply, store, u, 'totp');
  });

  // Logging out deletes the server-side row: the old cookie opens nothing afterwards.
  app.post('/logout', { preValidation: app.csrfProtection, preHandler: deps.authenticate, schema: { body: only({ _csrf: text(256) }) } }, async (req, reply) => {
    const user = req.webUser!.name;
    await req.session.destroy();
    await store.audit.append(draft('web.logout', 'system', { user, source: req.ip }));
    return reply.clearCookie('gh_session', { path: '/' }).code(303).header('location', '/login').send();
  });
}

/** CSRF tokens are bound to who is logged in: a token from one user's page is no good for another's. */
export function csrfUserInfo(req: FastifyRequest): string {
  const user = (req.session as { get?: (k: 'user') => string | undefined } | null)?.get?.('user');
  return user ? `user:${user}` : 'anonymous';
}

function loginPage(csrfToken: string, error?: string): string {
  const err = error ? '<p class="error">Login refused. Check your user name, password and code.</p>' : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · gatehouse</title><link rel="stylesheet" href="/static/app.css"></head>
<body><main class="login"><h1>gatehouse</h1>${err}
<form method="post" action="/login">
<input type="hidden" name="_csrf" value="${csrfToken.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`)}">
<label>User <input name="username" autocomplete="username" maxlength="64" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}"></label>
<p class="note">With a registered security key, leave the code empty.</p>
<button type="submit">Log in</button></form></main></body></html>`;
}
