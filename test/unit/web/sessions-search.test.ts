import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, login, startWeb, type Jar, type WebFixture } from './fixture.js';

/**
 * The sessions page searches through sessions.query: with more matches than the old 1000 cut, the
 * count is exact and the last page holds the oldest match, with and without a filter.
 */
const MATCHES = 1205;
let f: WebFixture;
let jar: Jar;

beforeAll(async () => {
  f = await startWeb();
  for (let i = 0; i < MATCHES + 20; i++) {
    f.clock.advance(60_000);
    const id = `srch-${String(i).padStart(5, '0')}`;
    await f.store.sessions.open({ id, user: i % 2 ? 'op' : 'aud', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    await f.store.sessions.setTarget(id, 'web1', 'deploy', 1);
    await f.store.search.index(id, 0, [{ t: 4.5, text: i < MATCHES ? 'kernel: segfault at 0' : 'all fine' }]);
    await f.store.sessions.close(id, 'client_closed', 0, 0);
  }
  ({ jar } = await login(f, 'aud'));
}, 60_000);
afterAll(async () => { await f?.close(); });

const idsOn = (body: string) => [...body.matchAll(/<a href="\/sessions\/(srch-\d+)/g)].map((m) => m[1]);

describe('GET /sessions search', () => {
  it('shows the exact count and reaches the oldest match on the last page, with the replay link at the hit', async () => {
    const first = await get(f, jar, '/sessions?q=segfault');
    expect(first.statusCode).toBe(200);
    expect(first.body).toContain(`<p>${MATCHES} session(s)`);
    expect(idsOn(first.body)[0]).toBe(`srch-${String(MATCHES - 1).padStart(5, '0')}`);
    expect(first.body).toContain('href="/sessions/srch-01204?channel=0&amp;t=4.0"');
    const lastPage = Math.ceil(MATCHES / 50);
    const last = await get(f, jar, `/sessions?q=segfault&page=${lastPage}`);
    expect(idsOn(last.body).at(-1)).toBe('srch-00000');
    expect(idsOn(last.body)).toHaveLength(MATCHES - (lastPage - 1) * 50);
    expect(last.body).not.toContain('>next<');
  });

  it('a filter counts every match of its own, not those left of a cut', async () => {
    const res = await get(f, jar, '/sessions?q=segfault&user=aud');
    expect(res.body).toContain(`<p>${Math.ceil(MATCHES / 2)} session(s)`);
    const lastPage = Math.ceil(Math.ceil(MATCHES / 2) / 50);
    expect(idsOn((await get(f, jar, `/sessions?q=segfault&user=aud&page=${lastPage}`)).body).at(-1)).toBe('srch-00000');
    expect((await get(f, jar, '/sessions?q=segfault&status=terminated')).body).toContain('<p>0 session(s)');
  });

  it('short text is no search (and says so); FTS syntax is literal text', async () => {
    const short = await get(f, jar, '/sessions?q=se');
    expect(short.body).toContain('(search needs at least 3 characters)');
    expect(short.body).toContain(`<p>${MATCHES + 20 + 1} session(s)`);
    const syntax = await get(f, jar, '/sessions?q=' + encodeURIComponent('segfault" OR "fine'));
    expect(syntax.statusCode).toBe(200);
    expect(syntax.body).toContain('<p>0 session(s)');
  });
});
