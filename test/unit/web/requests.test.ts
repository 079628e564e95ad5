import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../../helpers/totp.js';
import { csrfIn, get, login, post, SECRET, startWeb, type WebFixture } from './fixture.js';

/**
 * The Requests page: an approver logs in and lands on it, sees the pending request, and approving
 * asks for a fresh TOTP code at that moment: none, a wrong one or a replayed one approves nothing.
 * The requester cannot approve their own; an admin without the approver role decides nothing.
 */
let f: WebFixture;
let id: number;
const HOUR = 3_600_000;
const code = () => totpAt(SECRET, f.clock.now() / 1000);

beforeAll(async () => {
  f = await startWeb();
  await f.addViewer('carol', ['approver']);
  await f.addViewer('bob', ['operator', 'approver']);
  ({ request: { id } } = await f.store.requests.create({
    user: 'bob', login: 'deploy', target: { kind: 'host', name: 'web1' }, reason: 'disk <b>full</b>', durationMs: HOUR, expiresAt: f.clock.now() + HOUR,
  }, { maxOpen: 3 }));
});
afterAll(async () => { await f?.close(); });

describe('the Requests page', () => {
  it('an approver-only user logs in to the Requests page and sees the pending request, escaped', async () => {
    const { jar, location } = await login(f, 'carol');
    expect(location).toBe('/requests');
    const list = await get(f, jar, '/requests');
    expect(list.statusCode).toBe(200);
    expect(list.body).toContain(`href="/requests/${id}"`);
    expect(list.body).toContain('disk &lt;b&gt;full&lt;/b&gt;');
    // The other pages stay closed to an approver without the auditor role, who stays signed in for
    // the Requests page; the menu offers nothing else.
    expect(list.body).not.toContain('href="/sessions"');
    for (const url of ['/sessions', '/audit', '/users', '/sessions.csv']) expect((await get(f, jar, url)).statusCode, url).toBe(403);
    expect((await get(f, jar, '/requests')).statusCode).toBe(200);
  });

  it('approving needs a fresh TOTP code: none, wrong or replayed approve nothing; the right one makes the grant', async () => {
    const { jar } = await login(f, 'carol');
    const page = await get(f, jar, `/requests/${id}`);
    expect(page.body).toContain('id="approve"');
    const token = csrfIn(page.body);
    const usedAtLogin = code();
    expect((await post(f, jar, `/requests/${id}/approve`, { _csrf: token })).statusCode).toBe(403);
    expect((await post(f, jar, `/requests/${id}/approve`, { _csrf: token, code: '000000' })).statusCode).toBe(403);
    expect((await post(f, jar, `/requests/${id}/approve`, { _csrf: token, code: usedAtLogin })).body).toMatch(/replayed_code/);
    expect((await f.store.requests.get(id))!.state).toBe('pending');
    f.clock.advance(30_000);
    // Longer than asked is refused, shorter is taken.
    expect((await post(f, jar, `/requests/${id}/approve`, { _csrf: token, code: code(), for: '2h' })).statusCode).toBe(409);
    f.clock.advance(30_000);
    const ok = await post(f, jar, `/requests/${id}/approve`, { _csrf: token, code: code(), for: '20m', reason: 'go' });
    expect(ok.statusCode).toBe(303);
    const r = (await f.store.requests.get(id))!;
    expect(r).toMatchObject({ state: 'approved', grantUntil: f.clock.now() + 20 * 60_000 });
    expect(await f.store.grants.get(r.grantId!)).toMatchObject({ source: `request:${id}`, createdBy: 'web:carol' });
    expect((await f.store.audit.list({ type: 'request.approved' }))[0]).toMatchObject({ actor: 'web:carol', data: { reason: 'go' } });
 
    // The session page shows the request that allowed a session.
    await f.store.sessions.open({ id: 'sess-req', user: 'bob', keyFingerprint: 'SHA256:y', sourceAddr: '10.9.9.8', mode: 'command' });
    await f.store.sessions.setTarget('sess-req', 'web1', 'deploy', r.grantId!);
    const session = await get(f, (await login(f, 'boss')).jar, '/sessions/sess-req');
    expect(session.body).toMatch(new RegExp(`id="via-request"><a href="/requests/${id}">#${id}</a>: disk &lt;b&gt;full&lt;/b&gt; \\(approved by web:carol\\)`));
  });

  it('the requester cannot approve their own request; an admin without the approver role cannot either', async () => {
    const { request } = await f.store.requests.create({
      user: 'bob', login: 'root', target: { kind: 'host', name: 'web1' }, reason: 'again', durationMs: HOUR, expiresAt: f.clock.now() + HOUR,
    }, { maxOpen: 3 });
    const { jar } = await login(f, 'bob');
    const page = await get(f, jar, `/requests/${request.id}`);
    expect(page.body).not.toContain('id="approve"');
    f.clock.advance(30_000);
    const own = await post(f, jar, `/requests/${request.id}/approve`, { _csrf: csrfIn(page.body), code: code() });
    expect(own.statusCode).toBe(409);
    expect(own.body).toMatch(/cannot approve their own/);
    const boss = (await login(f, 'boss')).jar;
    const bossPage = await get(f, boss, `/requests/${request.id}`);
    expect(bossPage.statusCode).toBe(200);
    f.clock.advance(30_000);
    expect((await post(f, boss, `/requests/${request.id}/approve`, { _csrf: csrfIn(bossPage.body), code: code() })).statusCode).toBe(403);
    expect((await f.store.requests.get(request.id))!.state).toBe('pending');
  });
});
