import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../../src/auth/password.js';
import { loadConfig } from '../../../src/config/load.js';
import { openDataDir } from '../../../src/datadir/datadir.js';
import { seal } from '../../../src/datadir/seal.js';
import { LiveHub } from '../../../src/recorder/livehub.js';
import { ManualClock } from '../../../src/shared/clock.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import type { Store } from '../../../src/store/types.js';
import { createWebServer } from '../../../src/web/server.js';
import { tempDir } from '../../helpers/cli.js';
import { totpAt } from '../../helpers/totp.js';

const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
const PASSWORD = 'correct horse battery staple';
const meta = { actor: 'test' };

let app: FastifyInstance;
let store: Store;
let masterKey: Buffer;
const clock = new ManualClock(Date.UTC(2026, 10, 24, 12, 0, 0));

/** The browser's cookie jar, reduced to what the UI sets: the session and the CSRF cookie. */
type Jar = { cookie: string; all?: Map<string, string> };
function cookieFrom(res: { headers: Record<string, unknown> }, jar: Jar): void {
  const set = res.headers['set-cookie'];
  jar.all ??= new Map(jar.cookie ? jar.cookie.split('; ').map((p) => p.split('=', 2) as [string, string]) : []);
  for (const c of (Array.isArray(set) ? set : set ? [set] : []) as string[]) {
    const [pair] = c.split(';');
    const eq = pair!.indexOf('=');
    const [name, value] = [pair!.slice(0, eq), pair!.slice(eq + 1)];
    if (value === '' || /Expires=Thu, 01 Jan 1970/i.test(c)) jar.all.delete(name);
    else jar.all.set(name, value);
  }
  jar.cookie = [...jar.all].map(([k, v]) => `${k}=${v}`).join('; ');
}

async function csrfFrom(url: string, jar: Jar): Promise<string> {
  const res = await app.inject({ method: 'GET', url, headers: jar.cookie ? { cookie: jar.cookie } : {} });
  cookieFrom(res, jar);
  return /name="_csrf" value="([^"]+)"/.exec(res.body)![1]!;
}

async function login(user: string, code?: string, from?: string): Promise<{ jar: Jar; status: number; location: string }> {
  const jar: Jar = { cookie: '' };
  const token = await csrfFrom('/login', jar);
  clock.advance(30_000); // a new TOTP step for every login
  const res = await app.inject({
    method: 'POST', url: '/login', headers: { cookie: jar.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: token, username: user, password: PASSWORD, code: code ?? totpAt(SECRET, clock.now() / 1000) }).toString(),
    ...(from ? { remoteAddress: from } : {}),
  });
  cookieFrom(res, jar);
  return { jar, status: res.statusCode, location: String(res.headers.location) };
}

beforeAll(async () => {
  const dir = tempDir();
  const dataDir = openDataDir(path.join(dir, 'data'));
  masterKey = dataDir.masterKey;
  store = createSqliteStore(dataDir.paths.db, clock);
  const hash = await hashPassword(PASSWORD);
  for (const [name, roles] of [['aud', ['auditor']], ['boss', ['admin']], ['op', ['operator']]] as const) {
    await store.users.add(name, [...roles], meta);
    await store.users.setPassword(name, hash, meta);
    await store.totp.enroll(name, (uid) => seal(dataDir.masterKey, Buffer.from(SECRET), `totp:user:${uid}`), true, meta);
  }
  await store.hosts.add({ name: 'web1', address: '10.0.0.5', port: 22, groups: [], hostKey: null, hostKeyFingerprint: null }, meta);
  await store.grants.add({ who: { kind: 'user', name: 'op' }, where: { kind: 'host', name: 'web1' }, logins: ['deploy'], rights: ['shell'], until: null, reason: '' }, meta);
  await store.sessions.open({ id: 'sess-1', user: 'op', keyFingerprint: 'SHA256:x', sourceAddr: '10.9.9.9', mode: 'command' });
  await store.sessions.setTarget('sess-1', 'web1', 'deploy', 1);
  const config = loadConfig({ data: path.join(dir, 'data') }, {});
  app = await createWebServer({ config, store, clock, log: silentLogger(), dataDir, hub: new LiveHub(), liveCount: () => 3, liveBytes: () => 0 });
});
afterAll(async () => { await app?.close(); store?.close(); });

describe('web UI routes', () => {
  it('/healthz and /metrics answer without login and name no one', async () => {
    expect((await app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const m = await app.inject('/metrics');
    expect(m.body).toMatch(/^gatehouse_live_sessions 3$/m);
    expect(m.body).toMatch(/^gatehouse_auth_failures_total \d+$/m);
    expect(m.body).not.toMatch(/\b(op|aud|boss|web1|sess-1)\b/);
  });

  it('pages need a login; headers are strict', async () => {
    const res = await app.inject('/sessions');
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe('/login');
    const csp = String((await app.inject('/login')).headers['content-security-policy']);
    expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).not.toContain('unsafe-inline');
  });

  it('logs in an auditor with password and TOTP; the cookie is HttpOnly and SameSite=Strict', async () => {
    const jar: Jar = { cookie: '' };
    const token = await csrfFrom('/login', jar);
    clock.advance(30_000);
    const res = await app.inject({
      method: 'POST', url: '/login', headers: { cookie: jar.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ _csrf: token, username: 'aud', password: PASSWORD, code: totpAt(SECRET, clock.now() / 1000) }).toString(),
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/sessions');
    expect(String(res.headers['set-cookie'])).toMatch(/HttpOnly/i);
    expect(String(res.headers['set-cookie'])).toMatch(/SameSite=Strict/i);
    const ev = (await store.audit.list({ type: 'web.login' })).at(-1)!;
    expect(ev.data).toMatchObject({ user: 'aud' });
  });

  it('refuses a wrong code, a replayed code, a wrong password and an operator, each audited', async () => {
    expect((await login('aud', '000000')).location).toBe('/login?error=1');
    const code = totpAt(SECRET, (clock.now() + 30_000) / 1000);
    expect((await login('aud', code)).location).toBe('/sessions');
    clock.advance(-30_000); // the same step again
    expect((await login('aud', code)).location).toBe('/login?error=1');
    expect((await login('op')).location).toBe('/login?error=1');
    const reasons = (await store.audit.list({ type: 'web.login_failed' })).map((e) => e.data.reason);
    expect(reasons).toEqual(expect.arrayContaining(['wrong_code', 'replayed_code', 'not_auditor']));
  });

  it('wrong codes on the web count toward the same lockout as SSH; a locked user is refused even with the right code', async () => {
    await store.users.add('aud2', ['auditor'], meta);
    await store.users.setPassword('aud2', await hashPassword(PASSWORD), meta);
    await store.totp.enroll('aud2', (uid) => seal(masterKey, Buffer.from(SECRET), `totp:user:${uid}`), true, meta);
    // Its own address, so the per-address rate limit of the other tests does not interfere.
    const post = async (code: string) => {
      const jar: Jar = { cookie: '' };
      const token = await csrfFrom('/login', jar);
      clock.advance(30_000);
      const res = await app.inject({
        method: 'POST', url: '/login', remoteAddress: '10.7.7.7', headers: { cookie: jar.cookie, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ _csrf: token, username: 'aud2', password: PASSWORD, code }).toString(),
      });
      return String(res.headers.location);
    };
    for (let i = 0; i < 5; i++) expect(await post('000000')).toBe('/login?error=1');
    const id = (await store.users.get('aud2'))!.id;
    expect(await store.lockout.lockedUntil(id, clock.now())).not.toBeNull();
    expect((await store.audit.list({ type: 'auth.locked' })).at(-1)!.data).toMatchObject({ user: 'aud2', source: '10.7.7.7' });
    expect(await post(totpAt(SECRET, (clock.now() + 30_000) / 1000))).toBe('/login?error=1');
    const last = (await store.audit.list({ type: 'web.login_failed' })).at(-1)!;
    expect(last.data).toMatchObject({ user: 'aud2', reason: 'locked' });
  });

  it('a POST without the CSRF token is refused', async () => {
    const { jar } = await login('boss');
    const res = await app.inject({ method: 'POST', url: '/users/op/disable', headers: { cookie: jar.cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: '' });
    expect(res.statusCode).toBe(403);
    expect((await store.users.get('op'))!.disabled).toBe(false);
  });

  it('sessions, session, audit, users, hosts and grants pages show their data; unknown ids are 404', async () => {
    const { jar } = await login('aud');
    const get = (url: string) => app.inject({ method: 'GET', url, headers: { cookie: jar.cookie } });
    const list = (await get('/sessions')).body;
    expect(list).toContain('sess-1');
    expect(list).toMatch(/<th>Command<\/th>.*<th>Recording<\/th>/s);
    expect((await get('/sessions?user=nobody')).body).not.toContain('sess-1');
    const s = await get('/sessions/sess-1');
    expect(s.body).toContain('deploy@web1');
    expect((await store.audit.list({ type: 'recording.viewed' })).at(-1)!.data).toMatchObject({ session: 'sess-1', how: 'web' });
    expect((await get('/sessions/nope')).statusCode).toBe(404);
    expect((await get('/sessions/sess-1/0.cast')).statusCode).toBe(404);
    expect((await get('/sessions/sess-1/..%2F..%2Fgatehouse.db')).statusCode).toBe(404);
    expect((await get('/audit?type=web.login')).body).toContain('logged in to the web UI');
    expect((await get('/users')).body).toContain('boss');
    expect((await get('/users')).body).not.toContain('Disable'); // auditors read only
    expect((await get('/hosts')).body).toContain('10.0.0.5:22');
    expect((await get('/grants')).body).toContain('deploy');

    // A live session with no channel open yet says so and waits for one (web/app.js reloads it);
    // ended without one, it has no recording.
    await store.sessions.open({ id: 'sess-wait', user: 'op', keyFingerprint: 'SHA256:x', sourceAddr: '10.9.9.9', mode: 'menu' });
    const waiting = (await get('/sessions/sess-wait')).body;
    expect(waiting).toContain('id="live-waiting"');
    expect(waiting).not.toContain('No recording.');
    expect(waiting).not.toContain('id="player"');
    // Its reloads are one view in the audit (a minute at a time), not one each.
    const views = async () => (await store.audit.list({ type: 'recording.viewed' })).filter((e) => e.data.session === 'sess-wait').length;
    expect(await views()).toBe(1);
    clock.advance(10_000);
    await get('/sessions/sess-wait');
    expect(await views()).toBe(1);
    clock.advance(60_000);
    await get('/sessions/sess-wait');
    expect(await views()).toBe(2);
    // Another viewer's first view is theirs: audited.
    const boss = await login('boss', undefined, '10.3.0.1');
    await app.inject({ method: 'GET', url: '/sessions/sess-wait', headers: { cookie: boss.jar.cookie } });
    expect(await views()).toBe(3);
    // A channel asked for by number never waits (it may never come), and is audited every time.
    expect((await get('/sessions/sess-wait?channel=3')).body).toContain('No recording.');
    expect(await views()).toBe(4);
    await store.sessions.close('sess-wait', 'client_closed', 0, 0);
    const ended = (await get('/sessions/sess-wait')).body;
    expect(ended).toContain('No recording.');
    expect(ended).not.toContain('live-waiting');
    expect(await views()).toBe(5);

    // A session that only forwards ports has no channel to wait for.
    await store.sessions.open({ id: 'sess-fwd', user: 'op', keyFingerprint: 'SHA256:x', sourceAddr: '10.9.9.9', mode: 'jump' });
    await store.audit.append({ type: 'forward.open', actor: 'op', data: { session: 'sess-fwd', user: 'op', host: 'web1', port: 22, login: 'deploy', grant: 1 } });
    const fwd = (await get('/sessions/sess-fwd')).body;
    expect(fwd).toContain('No recording.');
    expect(fwd).not.toContain('live-waiting');
  });

  it('an auditor cannot change anything; an admin can, through the same audited path', async () => {
    const aud = await login('aud');
    const token = await csrfFrom('/login', aud.jar); // auditors get no forms; any page's token will do
    const denied = await app.inject({ method: 'POST', url: '/grants/1/remove', headers: { cookie: aud.jar.cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: `_csrf=${encodeURIComponent(token)}` });
    expect(denied.statusCode).toBe(403);
    const boss = await login('boss');
    const t2 = await csrfFrom('/users', boss.jar);
    const ok = await app.inject({ method: 'POST', url: '/users/op/disable', headers: { cookie: boss.jar.cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: `_csrf=${encodeURIComponent(t2)}` });
    expect(ok.statusCode).toBe(303);
    expect((await store.users.get('op'))!.disabled).toBe(true);
    expect((await store.audit.list({ type: 'admin.user.disable' })).at(-1)).toMatchObject({ actor: 'web:boss' });
  });

  it('disabling a user logs them out at their next request', async () => {
    const { jar } = await login('aud');
    expect((await app.inject({ method: 'GET', url: '/sessions', headers: { cookie: jar.cookie } })).statusCode).toBe(200);
    await store.users.setDisabled('aud', true, 'test', meta);
    const res = await app.inject({ method: 'GET', url: '/sessions', headers: { cookie: jar.cookie } });
    expect(res.statusCode).toBe(302);
    await store.users.setDisabled('aud', false, '', meta);
  });

  // Last on purpose: it uses up this address's login budget.
  it('rate-limits login attempts per address', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 15; i++) {
      const res = await app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'username=x' });
      codes.push(res.statusCode);
    }
    expect(codes).toContain(429);
    expect(codes.at(-1)).toBe(429);
  });
});
