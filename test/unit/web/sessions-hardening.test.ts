import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../../src/auth/password.js';
import { SESSION_TTL_MS } from '../../../src/web/server.js';
import { totpAt } from '../../helpers/totp.js';
import { csrfIn, get, login, post, PASSWORD, SECRET, startWeb, type WebFixture } from './fixture.js';

/** Issue 12, holes 7, 8, 10 and 11: logout, anonymous session rows, login timing and lockout, live-view origin. */
let f: WebFixture;
const verified: string[] = [];

beforeAll(async () => {
  // The password check is injected so a test can see that it runs for every attempt.
  f = await startWeb({ deps: { verifyPassword: async (pw, hash) => { verified.push(hash); return verifyPassword(pw, hash); } } });
});
afterAll(async () => { await f?.close(); });

const sidsOnDisk = () => f.one<{ s: string | null }>('SELECT group_concat(sid) AS s FROM web_sessions')!.s?.split(',') ?? [];

describe('log out (hole 7)', () => {
  it('the Log out form carries a CSRF token; logging out deletes the session row, audits web.logout, and the old cookie opens nothing', async () => {
    const { jar, location } = await login(f, 'aud', { from: '10.1.0.1' });
    expect(location).toBe('/sessions');
    const oldCookie = jar.header;
    const rowsLoggedIn = f.rows('web_sessions');
    const page = await get(f, jar, '/sessions');
    expect(page.statusCode).toBe(200);
    expect(page.body).toMatch(/<form method="post" action="\/logout"[^>]*><input type="hidden" name="_csrf" value="[^"]+">/);
    const res = await post(f, jar, '/logout', { _csrf: csrfIn(page.body.slice(page.body.indexOf('action="/logout"'))) });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/login');
    expect(f.rows('web_sessions')).toBe(rowsLoggedIn - 1);
    expect((await f.store.audit.list({ type: 'web.logout' })).at(-1)!.data).toMatchObject({ user: 'aud' });
    const after = await f.app.inject({ method: 'GET', url: '/sessions', headers: { cookie: oldCookie } });
    expect(after.statusCode).toBe(302);
    expect(after.headers.location).toBe('/login');
  });

  it('a log-out POST without the token is refused and the session stays', async () => {
    const { jar } = await login(f, 'aud', { from: '10.1.0.2' });
    const res = await post(f, jar, '/logout', {});
    expect(res.statusCode).toBe(403);
    expect((await get(f, jar, '/sessions')).statusCode).toBe(200);
  });

  it("one user's CSRF token is refused in another user's session", async () => {
    const a = await login(f, 'aud', { from: '10.1.0.3' });
    const tokenOfAud = csrfIn((await get(f, a.jar, '/sessions')).body);
    const b = await login(f, 'boss', { from: '10.1.0.3' });
    // boss's cookies (session and CSRF cookie) with aud's token.
    expect((await post(f, b.jar, '/logout', { _csrf: tokenOfAud })).statusCode).toBe(403);
  });
});

describe('web session rows (hole 8)', () => {
  it('anonymous visits to /login store no row, with or without a stale cookie', async () => {
    const before = f.rows('web_sessions');
    for (let i = 0; i < 20; i++) {
      const res = await f.app.inject({ method: 'GET', url: '/login', headers: i % 2 ? { cookie: 'gh_session=forged.value' } : {} });
      expect(res.statusCode).toBe(200);
    }
    expect(f.rows('web_sessions')).toBe(before);
  });

  it('page views do not rewrite the session row', async () => {
    const { jar } = await login(f, 'aud', { from: '10.1.0.4' });
    const signed = decodeURIComponent(jar.cookies.get('gh_session')!);
    const sid = signed.slice(0, signed.lastIndexOf('.'));
    const row = () => f.one<{ data: string; expires_at: number }>('SELECT data, expires_at FROM web_sessions WHERE sid = ?', sid);
    const first = row();
    expect(first).toBeDefined();
    f.clock.advance(60_000);
    for (const url of ['/sessions', '/audit', '/users', '/sessions/sess-1']) expect((await get(f, jar, url)).statusCode).toBe(200);
    expect(row()).toEqual(first);
  });

  it('expired rows are purged when a session is written, without anyone presenting their cookie', async () => {
    await login(f, 'aud', { from: '10.1.0.5' });
    const stale = sidsOnDisk();
    expect(stale.length).toBeGreaterThan(0);
    f.clock.advance(SESSION_TTL_MS + 60_000);
    await login(f, 'boss', { from: '10.1.0.5' });
    const now = sidsOnDisk();
    expect(now).toHaveLength(1);
    expect(stale).not.toContain(now[0]);
  });
});

describe('web login timing and lockout (hole 10)', () => {
  it('runs the password derivation for unknown users and for accounts that may not use the UI', async () => {
    for (const user of ['nobody-at-all', 'op']) {
      verified.length = 0;
      const { location } = await login(f, user, { from: '10.1.0.6' });
      expect(location).toBe('/login?error=1');
      expect(verified).toHaveLength(1);
      // A stand-in with the cost parameters of real hashes.
      expect(verified[0]).toMatch(/^scrypt\$32768\$8\$1\$/);
    }
    verified.length = 0;
    await login(f, 'aud', { from: '10.1.0.6', password: 'wrong password entirely' });
    expect(verified).toHaveLength(1);
  });

  it('wrong web passwords lock the user (auth.locked audited); then the right password and code are refused as locked', async () => {
    await f.addViewer('aud3');
    const from = '10.1.0.7';
    for (let i = 0; i < 5; i++) expect((await login(f, 'aud3', { from, password: `not the password ${i}` })).location).toBe('/login?error=1');
    const id = (await f.store.users.get('aud3'))!.id;
    expect(await f.store.lockout.lockedUntil(id, f.clock.now())).not.toBeNull();
    expect((await f.store.audit.list({ type: 'auth.locked' })).at(-1)!.data).toMatchObject({ user: 'aud3', source: from });
    const reasons = (await f.store.audit.list({ type: 'web.login_failed' })).filter((e) => e.data.user === 'aud3').map((e) => e.data.reason);
    expect(reasons).toEqual(Array(5).fill('wrong_password'));
    const { location } = await login(f, 'aud3', { from, password: PASSWORD, code: totpAt(SECRET, (f.clock.now() + 30_000) / 1000) });
    expect(location).toBe('/login?error=1');
    expect((await f.store.audit.list({ type: 'web.login_failed' })).at(-1)!.data).toMatchObject({ user: 'aud3', reason: 'locked' });
  });

  it("an operator's wrong web passwords do not lock their SSH login", async () => {
    const from = '10.1.0.8';
    for (let i = 0; i < 6; i++) await login(f, 'op', { from, password: `guess ${i}` });
    expect(await f.store.lockout.lockedUntil((await f.store.users.get('op'))!.id, f.clock.now())).toBeNull();
  });
});

/** A WebSocket upgrade by hand, so the Origin header is whatever the test says. */
function upgrade(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; firstFrame?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      agent: false, host: '127.0.0.1', port, path,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': 'v2.asciicast', ...headers },
    });
    const timer = setTimeout(() => { req.destroy(); reject(new Error('no answer to the upgrade in 5 s')); }, 5000);
    req.on('response', (res) => { clearTimeout(timer); res.resume(); resolve({ status: res.statusCode! }); });
    req.on('upgrade', (_res, socket, head: Buffer) => {
      let buf = Buffer.alloc(0);
      const take = (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 2) return;
        // Server frames are unmasked: opcode byte, then a 7-bit or 16-bit length.
        const len7 = buf[1]! & 0x7f;
        const [len, off] = len7 === 126 ? [buf.readUInt16BE(2), 4] : [len7, 2];
        if (buf.length < off + len) return;
        clearTimeout(timer);
        socket.destroy();
        resolve({ status: 101, firstFrame: buf.subarray(off, off + len).toString('utf8') });
      };
      socket.on('data', take);
      take(head);
    });
    req.on('error', (err) => { clearTimeout(timer); reject(err); });
    req.end();
  });
}

describe('live view over WebSocket (hole 11)', () => {
  let port: number;
  let cookie: string;
  beforeAll(async () => {
    await f.app.listen({ host: '127.0.0.1', port: 0 });
    port = (f.app.server.address() as AddressInfo).port;
    f.hub.open('sess-1', 0, Buffer.from('{"version":2,"width":80,"height":24}\n'));
    f.hub.publish('sess-1', 0, Buffer.from('[0.1,"o","hello"]\n'));
    cookie = (await login(f, 'aud', { from: '10.1.0.9' })).jar.header;
  });

  const liveViews = async () => (await f.store.audit.list({ type: 'web.live_view' })).length;

  it('refuses an upgrade from another origin, or with no Origin, before anything is streamed or audited', async () => {
    const before = await liveViews();
    for (const origin of ['http://evil.example', `http://127.0.0.1:${port}.evil.example`, `https://127.0.0.1:${port}`, 'null']) {
      expect((await upgrade(port, '/live/sess-1/0', { cookie, Origin: origin })).status).toBe(403);
    }
    expect((await upgrade(port, '/live/sess-1/0', { cookie })).status).toBe(403);
    expect(await liveViews()).toBe(before);
  });

  it('streams to the UI\'s own origin and audits web.live_view', async () => {
    const r = await upgrade(port, '/live/sess-1/0', { cookie, Origin: `http://127.0.0.1:${port}` });
    expect(r.status).toBe(101);
    expect(JSON.parse(r.firstFrame!)).toMatchObject({ version: 2 });
    const ev = (await f.store.audit.list({ type: 'web.live_view' })).at(-1)!;
    expect(ev.actor).toBe('web:aud');
    expect(ev.data).toMatchObject({ user: 'aud', session: 'sess-1', channel: 0, sessionUser: 'op', source: '127.0.0.1' });
  });

  it('still needs a login from the right origin', async () => {
    expect((await upgrade(port, '/live/sess-1/0', { Origin: `http://127.0.0.1:${port}` })).status).toBe(401);
  });
});

describe('live view behind a reverse proxy (web.origin)', () => {
  it('accepts only the configured origin', async () => {
    const g = await startWeb({ webOrigin: 'https://audit.example.com' });
    try {
      await g.app.listen({ host: '127.0.0.1', port: 0 });
      const p = (g.app.server.address() as AddressInfo).port;
      g.hub.open('sess-1', 0, Buffer.from('{"version":2,"width":80,"height":24}\n'));
      const c = (await login(g, 'aud')).jar.header;
      expect((await upgrade(p, '/live/sess-1/0', { cookie: c, Origin: `http://127.0.0.1:${p}` })).status).toBe(403);
      expect((await upgrade(p, '/live/sess-1/0', { cookie: c, Origin: 'https://audit.example.com' })).status).toBe(101);
    } finally {
      await g.close();
    }
  });
});


describe('review round 2: lockout abuse, credential changes and open live views', () => {
  it('an admin who is also an operator: wrong web passwords from anyone do not lock them out of SSH or the web', async () => {
    await f.addViewer('adminop', ['admin', 'operator']);
    const from = '10.2.0.1';
    for (let i = 0; i < 6; i++) expect((await login(f, 'adminop', { from, password: `guess ${i}` })).location).toBe('/login?error=1');
    expect(await f.store.lockout.lockedUntil((await f.store.users.get('adminop'))!.id, f.clock.now())).toBeNull();
    expect((await login(f, 'adminop', { from: '10.2.0.2' })).location).toBe('/sessions');
  });

  it('a TOTP reset or a password change ends the web sessions logged in before it', async () => {
    await f.addViewer('aud5');
    const a = await login(f, 'aud5', { from: '10.2.0.3' });
    expect((await get(f, a.jar, '/sessions')).statusCode).toBe(200);
    await f.store.totp.reset('aud5', { actor: 'test' });
    expect((await get(f, a.jar, '/sessions')).statusCode).toBe(302);

    await f.addViewer('aud6');
    const b = await login(f, 'aud6', { from: '10.2.0.4' });
    expect((await get(f, b.jar, '/sessions')).statusCode).toBe(200);
    await f.store.users.setPassword('aud6', 'scrypt$changed', { actor: 'test' });
    expect((await get(f, b.jar, '/sessions')).statusCode).toBe(302);
  });

  it('an open live view is closed when its viewer logs out (and when disabled)', async () => {
    const port = (f.app.server.address() as AddressInfo).port;
    if (!f.hub.isLive('sess-1', 0)) f.hub.open('sess-1', 0, Buffer.from('{"version":2,"width":80,"height":24}\n'));
    for (const end of ['logout', 'disable'] as const) {
      const name = `aud-live-${end}`;
      await f.addViewer(name);
      const { jar } = await login(f, name, { from: '10.2.0.5' });
      const { closed } = await openLive(port, '/live/sess-1/0', { cookie: jar.header, Origin: `http://127.0.0.1:${port}` });
      if (end === 'logout') {
        const page = await get(f, jar, '/sessions');
        expect((await post(f, jar, '/logout', { _csrf: csrfIn(page.body.slice(page.body.indexOf('action="/logout"'))) })).statusCode).toBe(303);
      } else {
        await f.store.users.setDisabled(name, true, 'left', { actor: 'test' });
      }
      expect(await closed).toBe('closed');
    }
  });
});

/** Opens a live view and resolves once the server closes it ('closed'), or after 8 s ('open'). */
async function openLive(port: number, path: string, headers: Record<string, string>): Promise<{ closed: Promise<'closed' | 'open'> }> {
  return new Promise((resolveOpened, reject) => {
    const req = http.request({
      agent: false, host: '127.0.0.1', port, path,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': 'v2.asciicast', ...headers },
    });
    req.on('response', (res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    req.on('upgrade', (_res, socket) => {
      resolveOpened({ closed: new Promise((resolve) => {
        const timer = setTimeout(() => { socket.destroy(); resolve('open'); }, 8000);
        // A close frame (opcode 8) or the socket ending: the server let go.
        socket.on('data', (d: Buffer) => { if ((d[0]! & 0x0f) === 8 || d.includes(0x88)) { clearTimeout(timer); socket.destroy(); resolve('closed'); } });
        socket.on('close', () => { clearTimeout(timer); resolve('closed'); });
      }) });
    });
    req.on('error', reject);
    req.end();
  });
}
