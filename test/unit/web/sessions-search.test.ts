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
    expect(first.body).toContain(`<p class="count">${MATCHES} session(s)`);
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
    expect(res.body).toContain(`<p class="count">${Math.ceil(MATCHES / 2)} session(s)`);
    const lastPage = Math.ceil(Math.ceil(MATCHES / 2) / 50);
    expect(idsOn((await get(f, jar, `/sessions?q=segfault&user=aud&page=${lastPage}`)).body).at(-1)).toBe('srch-00000');
    expect((await get(f, jar, '/sessions?q=segfault&status=terminated')).body).toContain('<p class="count">0 session(s)');
  });

  it('short text is no search (and says so); FTS syntax is literal text', async () => {
    const short = await get(f, jar, '/sessions?q=se');
    expect(short.body).toContain('(search needs at least 3 characters)');
    expect(short.body).toContain(`<p class="count">${MATCHES + 20 + 1} session(s)`);
    const syntax = await get(f, jar, '/sessions?q=' + encodeURIComponent('segfault" OR "fine'));
    expect(syntax.statusCode).toBe(200);
    expect(syntax.body).toContain('<p class="count">0 session(s)');
  });

  it('each hit shows its line with the match marked (escaped), linked to that moment', async () => {
    f.clock.advance(60_000);
    await f.store.sessions.open({ id: 'srch-html', user: 'op', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    await f.store.search.index('srch-html', 3, [{ t: 1, text: 'first line\n<script>alert(1)</script> Kernel: SEGFAULT at 0xdead <b>\nlast line' }]);
    await f.store.search.index('srch-html', 3, [{ t: 7, text: 'again segfault' }]);
    const res = await get(f, jar, '/sessions?q=segfault&user=op');
    const row = /<tr class="hit">[\s\S]*?<\/tr>/.exec(res.body)![0];
    expect(row).toContain('href="/sessions/srch-html?channel=3&amp;t=0.5"');
    expect(row).toContain('<code class="hit-line">&lt;script&gt;alert(1)&lt;/script&gt; Kernel: <mark>SEGFAULT</mark> at 0xdead &lt;b&gt;</code>');
    expect(res.body).not.toContain('<script>alert(1)');
    // Times carry the exact UTC instant for app.js to show relative, with the exact time on hover.
    expect(res.body).toMatch(/<time datetime="\d{4}-\d\d-\d\dT[^"]+Z" title="[^"]+Z">/);
  });

  it('exports every match (not a page) as CSV and JSON, and each export is audited', async () => {
    const json = await get(f, jar, '/sessions.json?q=segfault&user=aud');
    expect(json.statusCode).toBe(200);
    expect(json.headers['content-disposition']).toMatch(/^attachment; filename="gatehouse-sessions-.*\.json"$/);
    const rows = JSON.parse(json.body) as { id: string; hit: { channel: number; t: number; line: string } | null; link: string; status: string }[];
    expect(rows).toHaveLength(Math.ceil(MATCHES / 2));
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
    expect(rows.at(-1)).toMatchObject({ id: 'srch-00000', status: 'ended', hit: { channel: 0, t: 4.5, line: 'kernel: segfault at 0' } });
    expect(rows.at(-1)!.link).toMatch(/\/sessions\/srch-00000\?channel=0&t=4\.0$/);
    const csv = await get(f, jar, '/sessions.csv?q=segfault');
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    const lines = csv.body.trimEnd().split('\r\n');
    expect(lines[0]).toBe('id,user,from,target,started_at,ended_at,status,end_reason,hit_channel,hit_t,hit_line,link');
    expect(lines.length - 1).toBe(MATCHES + 1); // with srch-html
    expect(lines).toContain(lines.find((l) => l.startsWith('srch-html,'))!);
    // A target's output never becomes a spreadsheet formula, and quotes and commas stay in their field.
    f.clock.advance(60_000);
    await f.store.sessions.open({ id: 'srch-csv', user: 'op', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    await f.store.search.index('srch-csv', 0, [{ t: 2, text: '=HYPERLINK("http://x", "a,b") zqxcsv' }]);
    const one = await get(f, jar, '/sessions.csv?q=zqxcsv');
    expect(one.body.split('\r\n')[1]).toContain(`,"'=HYPERLINK(""http://x"", ""a,b"") zqxcsv",`);
    type Ev = { type: string; actor: string; data: Record<string, unknown> };
    const evs = (await f.store.audit.list({ type: 'sessions.exported' })) as unknown as Ev[];
    expect(evs.map((e) => [e.data.format, e.data.count, e.data.text, e.data.user])).toEqual([
      ['json', Math.ceil(MATCHES / 2), 'segfault', 'aud'], ['csv', MATCHES + 1, 'segfault', null], ['csv', 1, 'zqxcsv', null],
    ]);
    expect(evs[0]!.actor).toBe('web:aud');
  });

  it('the file filter (a literal path substring) meets text and the other filters, and pages and exports like them', async () => {
    const file = (sessionId: string, path: string) => f.store.files.add({ sessionId, channel: 0, protocol: 'sftp', direction: 'download', path, size: 10, sha256: 'ab'.repeat(32) });
    await file('srch-00007', '/etc/passwd');
    await file('srch-00008', '/home/op/etc%passwd_');
    await file('srch-01210', '/etc/passwd.bak');
    const ids = async (url: string) => idsOn((await get(f, jar, url)).body);
    expect(await ids('/sessions?file=%2Fetc%2Fpasswd')).toEqual(['srch-01210', 'srch-00007']);
    // Literal: % and _ are no patterns.
    expect(await ids('/sessions?file=%25passwd_')).toEqual(['srch-00008']);
    expect(await ids('/sessions?file=%2Fetc%2Fpasswd&q=segfault')).toEqual(['srch-00007']);
    expect(await ids('/sessions?file=%2Fetc%2Fpasswd&user=op')).toEqual(['srch-00007']);
    const page = await get(f, jar, '/sessions?file=%2Fetc%2Fpasswd');
    expect(page.body).toContain('<p class="count">2 session(s)');
    expect(page.body).toContain('href="/sessions.csv?file=%2Fetc%2Fpasswd"');
    const rows = JSON.parse((await get(f, jar, '/sessions.json?file=%2Fetc%2Fpasswd')).body) as { id: string }[];
    expect(rows.map((r) => r.id)).toEqual(['srch-01210', 'srch-00007']);
    expect((await f.store.audit.list({ type: 'sessions.exported' })).at(-1)!.data).toMatchObject({ file: '/etc/passwd', count: 2 });
  });
});
