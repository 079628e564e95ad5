import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../../../src/shared/clock.js';
import { likeSubstring, MATCHES } from '../../../src/store/postgres/search.js';
import { PG_DEFAULT_TUNING, type PgSearchTuning } from '../../../src/store/postgres/sessions.js';
import { DEFAULT_TUNING, querySql, type SearchTuning } from '../../../src/store/sqlite/sessions.js';
import type { SessionQuery, SessionStatus, Store } from '../../../src/store/types.js';
import { forEachBackend, type Made } from './backends.js';

/**
 * The auditors' search contract: every session that matches is reachable through the pages, with and
 * without each filter, and the total is exact. The data set holds more matches than any limit the
 * code ever had (search.find's 1000 cut), built through the store's own API on a real SQLite file
 * and on a real PostgreSQL database (each backend with the plans it has: SearchTuning for SQLite).
 */
const RARE = 'xylophage';
const PLANTED = 1500;
const OTHERS = 300;
const USERS = ['ann', 'ben', 'cat'];
const HOSTS = ['db1', 'db2', 'db3', 'db4', 'db5'];
const DAY = 86_400_000;
/** Spread over 9 days: since/until cut real slices. */
const STEP = Math.floor((9 * DAY) / (PLANTED + OTHERS));
const ENDINGS: { reason: string | null; status: SessionStatus }[] = [
  { reason: 'client_closed', status: 'ended' },
  { reason: 'revoked:user_disabled', status: 'terminated' },
  { reason: null, status: 'live' },
  { reason: 'interrupted', status: 'interrupted' },
  { reason: 'max_duration', status: 'terminated' },
];

interface Planted { id: string; user: string; host: string; startedAt: number; status: SessionStatus; channel: number; t: number }

forEachBackend('sessions.query: the search contract', (make, backend) => {
  let store: Store;
  let made: Made;
  let t0: number;
  const planted: Planted[] = [];

  beforeAll(async () => {
    made = await make();
    store = made.store;
    t0 = made.clock.now();
    let n = 0;
    // PostgreSQL: one transaction for the whole load (store.batch), or 9000 round trips.
    const load = (fn: () => Promise<void>) => (backend === 'postgres' ? store.batch(fn) : fn());
    await load(async () => { for (let i = 0; i < PLANTED + OTHERS; i++) {
      made.clock.advance(STEP);
      // Every fifth session of the first days shares its start with the one before: ties must still page.
      if (i % 5 === 4 && i < 500) made.clock.advance(-STEP);
      const match = i % 6 !== 5 && n < PLANTED;
      const id = `s-${String(i).padStart(5, '0')}`;
      const user = USERS[i % USERS.length]!;
      const host = HOSTS[i % HOSTS.length]!;
      const end = ENDINGS[i % ENDINGS.length]!;
      await store.sessions.open({ id, user, keyFingerprint: 'SHA256:k', sourceAddr: '10.0.0.1', mode: 'shell', node: 'n1' });
      await store.sessions.setTarget(id, host, 'root', 1);
      if (match) {
        n++;
        // The word appears in channel 1 at 2.5 s and again in channel 2 earlier: the hit is channel 1's first.
        const channel = 1 + (i % 2);
        await store.search.index(id, channel, [{ t: 0.5, text: 'ls -la' }, { t: 2.5, text: `make: ${RARE} in db` }, { t: 9, text: `${RARE} again` }]);
        await store.search.index(id, channel + 1, [{ t: 0.1, text: `late ${RARE}` }]);
        planted.push({ id, user, host, startedAt: made.clock.now(), status: end.status, channel, t: 2.5 });
      } else {
        await store.search.index(id, 1, [{ t: 1, text: 'xylophone practice, not the word' }]);
      }
      if (end.reason !== null) await store.sessions.close(id, end.reason, 1, 2);
    } });
    expect(planted).toHaveLength(PLANTED);
    // The tests below ask for exact counts: a count budget that never runs out (each tuning, the
    // default included, is walked on its own in the tests that loop over TUNINGS).
    await made.store.close();
    store = await made.reopen({ clock: made.clock, search: { ...DEFAULT_TUNING, countBudget: 1e9 } });
  }, 180_000);

  afterAll(async () => { await store?.close(); });

  /**
   * Walk every page to the first short one (bounded by the data set's size). An exact total is the
   * same on every page; a lower bound ("at least") never exceeds what the walk finds.
   */
  async function walk(q: Omit<SessionQuery, 'limit' | 'offset'>, limit = 97, s: Store = store) {
    const first = await s.sessions.query({ ...q, limit, offset: 0 });
    const seen: string[] = [];
    const hits = new Map<string, { channel: number; t: number } | null>();
    for (let page = 0; page <= Math.ceil((PLANTED + OTHERS + 10) / limit); page++) {
      const r = await s.sessions.query({ ...q, limit, offset: page * limit });
      if (first.exact) expect(r).toMatchObject({ total: first.total, exact: true });
      else expect(r.total).toBeGreaterThanOrEqual(page * limit + r.items.length);
      for (const it of r.items) { seen.push(it.session.id); hits.set(it.session.id, it.hit); }
      if (r.items.length < limit) break;
    }
    expect(first.total).toBeLessThanOrEqual(seen.length);
    return { total: first.exact ? first.total : seen.length, exact: first.exact, seen, hits };
  }

  /** The same contract on every plan the store can choose (see SearchTuning). */
  const TUNINGS: [string, SearchTuning & Partial<PgSearchTuning>][] = backend === 'sqlite' ? [
    ['default', DEFAULT_TUNING],
    ['text first, a count budget of 40 chunks, lists counted to 100', { smallFilter: 0, countBudget: 40, countCap: 100 }],
    ['filters first, always', { smallFilter: 1e9, countBudget: 1e9, countCap: 1e9 }],
  ] : [
    // PostgreSQL's plans (PgSearchTuning): matching sessions from the trigram index, or (a common
    // word) sessions walked newest first; here `countBudget` counts matching sessions.
    ['default', { ...DEFAULT_TUNING, ...PG_DEFAULT_TUNING }],
    ['every word common, a count budget of 40 sessions, lists counted to 100', { ...DEFAULT_TUNING, commonChunks: 0, countBudget: 40, countCap: 100, smallFilter: 0 }],
    ['every word rare', { ...DEFAULT_TUNING, commonChunks: 1e9, countBudget: 1e9, countCap: 1e9 }],
    ['every word common, filters first, always', { ...DEFAULT_TUNING, commonChunks: 0, countBudget: 1e9, countCap: 1e9, smallFilter: 1e9 }],
  ];
  const tuned = () => Promise.all(TUNINGS.map(async ([name, search]) => [name, await made.reopen({ clock: new ManualClock(t0), search })] as const));

  const expected = (f: (p: Planted) => boolean) => planted.filter(f).map((p) => p.id);

  it('finds every planted session, page by page, newest first, with the first moment of the text', async () => {
    for (const [name, s] of await tuned()) {
      try {
        const { total, seen, exact } = await walk({ text: RARE }, 97, s);
        expect(total, name).toBe(PLANTED);
        expect([...seen].sort(), name).toEqual(expected(() => true).sort());
        if (name === TUNINGS[1]![0]) expect(exact, name).toBe(false);
      } finally { await s.close(); }
    }
    const { total, seen, hits } = await walk({ text: RARE });
    expect(total).toBe(PLANTED);
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual(expected(() => true).sort());
    const byId = new Map(planted.map((p) => [p.id, p]));
    const starts = seen.map((id) => byId.get(id)!.startedAt);
    expect(starts).toEqual([...starts].sort((a, b) => b - a));
    for (const id of seen) expect(hits.get(id)).toEqual({ channel: byId.get(id)!.channel, t: byId.get(id)!.t, line: `make: ${RARE} in db`, match: [6, 6 + RARE.length] });
  });

  it('the old page (search.find(q, 1000), then filters) lost matches; the query does not', async () => {
    const cut = await store.search.find(RARE, 1000);
    const ids = [...new Set(cut.map((h) => h.sessionId))];
    // 1000 (session, channel) rows: here two channels per session, so only 500 sessions of 1500.
    expect(ids.length).toBeLessThanOrEqual(1000);
    expect(await store.sessions.count({ ids })).toBe(ids.length);
    expect(ids.length).toBeLessThan(PLANTED);
    expect((await store.sessions.query({ text: RARE, limit: 1, offset: 0 })).total).toBe(PLANTED);
    const oldAnn = await store.sessions.count({ ids, user: 'ann' });
    const newAnn = (await store.sessions.query({ text: RARE, user: 'ann', limit: 1, offset: 0 })).total;
    expect(newAnn).toBe(expected((p) => p.user === 'ann').length);
    expect(oldAnn).toBeLessThan(newAnn);
    // The oldest planted sessions were out of reach entirely.
    const oldest = planted[0]!.id;
    expect(ids).not.toContain(oldest);
  });

  it('every filter, alone and combined, reaches exactly the planted sessions it should', async () => {
    const since = t0 + 3 * DAY;
    const until = t0 + 6 * DAY;
    const cases: [Omit<SessionQuery, 'limit' | 'offset'>, (p: Planted) => boolean][] = [
      ...USERS.map((u): [Omit<SessionQuery, 'limit' | 'offset'>, (p: Planted) => boolean] => [{ user: u }, (p) => p.user === u]),
      ...HOSTS.map((h): [Omit<SessionQuery, 'limit' | 'offset'>, (p: Planted) => boolean] => [{ host: h }, (p) => p.host === h]),
      ...(['live', 'ended', 'terminated', 'interrupted'] as const).map((s): [Omit<SessionQuery, 'limit' | 'offset'>, (p: Planted) => boolean] => [{ status: s }, (p) => p.status === s]),
      [{ since }, (p) => p.startedAt >= since],
      [{ until }, (p) => p.startedAt < until],
      [{ since, until }, (p) => p.startedAt >= since && p.startedAt < until],
      [{ user: 'ben', host: 'db2', status: 'terminated' }, (p) => p.user === 'ben' && p.host === 'db2' && p.status === 'terminated'],
      [{ user: 'cat', since, status: 'live' }, (p) => p.user === 'cat' && p.startedAt >= since && p.status === 'live'],
      [{ user: 'nobody' }, () => false],
    ];
    for (const [name, s] of await tuned()) {
      try {
        for (const [filter, want] of cases) {
          const ids = expected(want);
          const { total, seen } = await walk({ text: RARE, ...filter }, 61, s);
          expect(total, `${name}: ${JSON.stringify(filter)}`).toBe(ids.length);
          expect([...seen].sort(), `${name}: ${JSON.stringify(filter)}`).toEqual(ids.sort());
        }
      } finally { await s.close(); }
    }
    // Some cases must be larger than a page and some empty, or the walk proves little.
    expect(expected((p) => p.user === 'ann').length).toBeGreaterThan(400);
  });

  it('a common word under a filter that keeps few sessions is met filters first: an exact count, not a walk cut by the count budget', async () => {
    // The word is common for the store (every word is, here) and matches far more sessions of ann
    // than the count budget: walking newest first would stop there and say "at least". A filter the
    // word never meets would make that walk read every session of the table.
    const ann = expected((p) => p.user === 'ann');
    expect(ann.length).toBeGreaterThan(40);
    const first = await made.reopen({ clock: new ManualClock(t0), search: { commonChunks: 0, countBudget: 40, countCap: 1e9, smallFilter: 1e6 } });
    const walked = await made.reopen({ clock: new ManualClock(t0), search: { commonChunks: 0, countBudget: 40, countCap: 1e9, smallFilter: 0 } });
    try {
      const r = await first.sessions.query({ text: RARE, user: 'ann', limit: 10, offset: 0 });
      expect(r).toMatchObject({ total: ann.length, exact: true });
      expect(r.items.map((i) => i.session.id)).toEqual((await walk({ text: RARE, user: 'ann' }, 10)).seen.slice(0, 10));
      expect(r.items.every((i) => i.hit?.line === `make: ${RARE} in db`)).toBe(true);
      const never = await first.sessions.query({ text: RARE, user: 'nobody', limit: 10, offset: 0 });
      expect(never).toMatchObject({ items: [], total: 0, exact: true });
      // The same query on the walking plan: cut by its budget (what the filter-first plan avoids).
      expect((await walked.sessions.query({ text: RARE, user: 'ann', limit: 10, offset: 0 })).exact).toBe(false);
    } finally {
      await first.close();
      await walked.close();
    }
  });

  it('without text, the filters count and page every session (planted or not)', async () => {
    const all = await walk({}, 250);
    expect(all.total).toBe(PLANTED + OTHERS);
    expect(new Set(all.seen).size).toBe(PLANTED + OTHERS);
    // Counted only to a cap: "at least", and every page still reachable.
    const [name, capped] = (await tuned())[1]!;
    try {
      const first = await capped.sessions.query({ user: 'ann', limit: 10, offset: 0 });
      expect(first, name).toMatchObject({ total: 100, exact: false });
      const w = await walk({ user: 'ann' }, 250, capped);
      expect(w.seen.sort()).toEqual((await walk({ user: 'ann' }, 250)).seen.sort());
    } finally { await capped.close(); }
    const live = await walk({ status: 'live', host: 'db1' }, 50);
    expect(live.total).toBe(await store.sessions.count({ status: 'live', host: 'db1' }));
    expect(new Set(live.seen).size).toBe(live.total);
  });

  it('a live channel is searchable step by step; the index at close replaces the steps exactly', async () => {
    await store.sessions.open({ id: 'live-1', user: 'ann', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    // Two steps cut a path in two (as a timer would), and a word lands in channel 1 at 2 s.
    await store.search.index('live-1', 1, [{ t: 1, text: 'first step: tail -f /var/log/app.lo' }]);
    await store.search.index('live-1', 1, [{ t: 2, text: 'g\nsecond step qwertyzip' }]);
    await store.search.index('live-1', 2, [{ t: 5, text: 'other channel qwertyzip' }]);
    const q = async (text: string) => (await store.sessions.query({ text, limit: 10, offset: 0 })).items.map((i) => ({ id: i.session.id, channel: i.hit?.channel, t: i.hit?.t }));
    expect(await q('qwertyzip')).toEqual([{ id: 'live-1', channel: 1, t: 2 }]);
    expect(await q('/var/log/app.log')).toEqual([]);
    // The recording closes: its exact text replaces channel 1's steps, channel 2 keeps its own.
    await store.search.reindex('live-1', 1, [{ t: 1, text: 'first step: tail -f /var/log/app.log\nsecond step' }]);
    expect(await q('/var/log/app.log')).toEqual([{ id: 'live-1', channel: 1, t: 1 }]);
    expect(await q('qwertyzip')).toEqual([{ id: 'live-1', channel: 2, t: 5 }]);
    expect((await store.sessions.query({ text: 'first step', limit: 10, offset: 0 })).total).toBe(1);
    const [{ n }] = await made.sql<{ n: number | string }>("SELECT count(*) AS n FROM session_text WHERE session_id = 'live-1'");
    expect(Number(n)).toBe(2);
    // A session that does not exist is refused, not indexed under key 0.
    await expect(store.search.reindex('nope', 1, [{ t: 0, text: 'x' }])).rejects.toThrow(/no session/);
  });

  it('user input is a literal substring, never FTS syntax', async () => {
    await store.sessions.open({ id: 'lit-1', user: 'ann', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    await store.search.index('lit-1', 0, [{ t: 3, text: 'sudo rm -rf /var/lib/db "quoted" NEAR(x y)' }]);
    for (const text of ['rm -rf /var', '"quoted"', 'NEAR(x', 'b "quo', 'rf /var/lib/db "quoted" NEAR(x y)']) {
      const r = await store.sessions.query({ text, limit: 10, offset: 0 });
      expect(r.items.map((i) => i.session.id), text).toEqual(['lit-1']);
      expect(r.items[0]!.hit).toMatchObject({ channel: 0, t: 3, line: 'sudo rm -rf /var/lib/db "quoted" NEAR(x y)' });
    }
    for (const text of ['xyloph*', 'rm OR xylophage', 'rm AND sudo', '^sudo']) {
      expect((await store.sessions.query({ text, limit: 10, offset: 0 })).total, text).toBe(0);
    }
    await expect(store.sessions.query({ text: 'rm', limit: 10, offset: 0 })).rejects.toThrow(/at least 3 characters/);
    await expect(store.sessions.query({ limit: -1, offset: 0 })).rejects.toThrow(/limit/);
  });

  // Each backend's own plans (registered only where they exist, not skipped elsewhere).
  if (backend === 'sqlite') it('user, host and status filters are index searches, never a scan of sessions', () => {
    const db = new Database(made.file!, { readonly: true });
    try {
      const plan = (sql: string, args: (string | number)[]) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join(' | ');
      const filters: Omit<SessionQuery, 'limit' | 'offset'>[] = [
        { user: 'ann' }, { host: 'db1' }, { status: 'ended' }, { status: 'live' }, { user: 'ann', status: 'ended' },
        { text: RARE }, { text: RARE, user: 'ann' }, { text: RARE, host: 'db1' }, { text: RARE, status: 'ended' },
        { since: t0 }, { since: t0, until: t0 + DAY },
      ];
      for (const f of filters) {
        const sql = querySql(f);
        for (const [stmt, args] of [[sql.page, [...sql.args, 50, 0]], [sql.count, sql.args]] as const) {
          const p = plan(stmt, [...args]);
          expect(p, `${JSON.stringify(f)}: ${p}`).not.toMatch(/SCAN sessions(?! USING)/);
          if (f.user || f.host || f.status) expect(p, `${JSON.stringify(f)}: ${p}`).not.toMatch(/SCAN sessions/);
        }
        // No filter but time: the page is read in index order and stops after the page.
        if (!f.text) expect(plan(sql.page, [...sql.args, 50, 0])).not.toMatch(/TEMP B-TREE FOR ORDER BY/);
      }
    } finally {
      db.close();
    }
  });

  if (backend === 'postgres') it('a rare word is found through the trigram index, never by reading every chunk or session', async () => {
    // This table is small enough that reading it whole is cheapest; what matters is that the index
    // can serve the search at all (a LIKE the index cannot serve would scan every chunk at any size).
    const c = new pg.Client({ connectionString: made.url! });
    await c.connect();
    try {
      await c.query('SET enable_seqscan = off');
      await c.query('SET enable_indexscan = off');
      const plan = (await c.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN SELECT DISTINCT session_id FROM session_text WHERE ${MATCHES}`, [likeSubstring('zebracorn')])).rows
        .map((r) => r['QUERY PLAN']).join('\n');
      expect(plan).toMatch(/Bitmap Index Scan on session_text_trgm/);
      expect(plan).not.toMatch(/Seq Scan on session_text/);
    } finally { await c.end(); }
  });
});
