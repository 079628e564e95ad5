/**
 * The `search` scenario of `npm run bench` (BENCH_ONLY=search): the auditors' search at 10k, 100k
 * and 1M sessions, measured through the web layer of a real `gatehouse serve` (login, query,
 * rendering), median of 5 per query kind. The data sets are built through the store's own code
 * (sessions.open, setTarget, openChannel, search.index, close in batches) and cached in the temp dir
 * between runs (BENCH_SEARCH_CACHE). Known rare words are planted in known sessions; before timing,
 * every planted session must be found, with and without filters, by walking every page.
 *
 * Knobs: BENCH_SEARCH_SIZES (comma list, default 10000,100000,1000000), BENCH_SEARCH_CACHE
 * (default $TMPDIR/gatehouse-bench-search), BENCH_STORE (sqlite, postgres or both; default sqlite).
 * On PostgreSQL (a throw-away cluster from test/helpers/postgres.ts, one database per size) the data
 * sets are built through the PostgreSQL store's own code on each run (the cluster is not kept, so
 * nothing is cached) and the server runs with `store: postgres://…`; the rows are the same.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashPassword } from '../src/auth/password.js';
import { newSecret } from '../src/auth/totp.js';
import { openDataDir, preparePrivateFile } from '../src/datadir/datadir.js';
import { seal } from '../src/datadir/seal.js';
import { ManualClock } from '../src/shared/clock.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { createPostgresStore } from '../src/store/postgres/index.js';
import type { Store } from '../src/store/types.js';
import { freePort, startProc, type Proc } from '../test/helpers/proc.js';
import { startPostgres, type Postgres } from '../test/helpers/postgres.js';

/** Bump when the generator changes: a cached data set of another version is rebuilt. */
const GENERATOR = 3;
const DAY = 86_400_000;
const USERS = 40;
const HOSTS = 300;
/** Planted words: each in exactly `count` sessions. */
const PLANTS = [3, 7, 25, 1000] as const;
const plantWord = (count: number) => `raremark${count}x`;
const COMMON = 'nginx';
const RUNS = 5;

/** A small seeded PRNG (mulberry32): the same data set on every machine. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Planted { id: string; user: string; host: string; startedAt: number }
interface Dataset { size: number; data: string; planted: Record<string, Planted[]>; end: number; auditors: { name: string; password: string; secret: string }[]; store?: string }
/** Where a data set lives: the SQLite file of its data directory (cached), or a PostgreSQL database (built each run). */
export type Backend = { kind: 'sqlite' } | { kind: 'postgres'; pg: Postgres; root: string };

const userName = (i: number) => `u${String(i).padStart(2, '0')}`;
const hostName = (i: number) => `h${String(i).padStart(3, '0')}`;

/** Build (or reuse) a data directory holding `size` sessions (on PostgreSQL: its database `s<size>`). */
async function dataset(size: number, cache: string, log: (...a: unknown[]) => void, backend: Backend = { kind: 'sqlite' }): Promise<Dataset> {
  const root = backend.kind === 'sqlite' ? path.join(cache, `v${GENERATOR}-${size}`) : path.join(backend.root, `s${size}`);
  const meta = path.join(root, 'dataset.json');
  if (backend.kind === 'sqlite' && fs.existsSync(meta)) return JSON.parse(fs.readFileSync(meta, 'utf8')) as Dataset;
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const data = path.join(root, 'data');
  const dd = openDataDir(data);
  preparePrivateFile(dd.paths.db);
  const end = Date.UTC(2026, 10, 30);
  const clock = new ManualClock(end - 90 * DAY);
  let url: string | undefined;
  let store: Store;
  if (backend.kind === 'postgres') {
    url = await createDatabase(backend.pg, `s${size}`);
    store = await createPostgresStore(url, clock);
  } else {
    store = createSqliteStore(dd.paths.db, clock);
  }
  const who = { actor: 'bench' };
  const auditors: Dataset['auditors'] = [];
  for (const name of ['aud1', 'aud2']) {
    const password = `bench-${name}-password`;
    const secret = newSecret();
    await store.users.add(name, ['auditor'], who);
    await store.users.setPassword(name, await hashPassword(password), who);
    await store.totp.enroll(name, (uid) => seal(dd.masterKey, Buffer.from(secret), `totp:user:${uid}`), true, who);
    auditors.push({ name, password, secret });
  }

  const rand = rng(size);
  // A vocabulary of made-up words (so trigrams spread like real text), plus the words people search.
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const vocab = Array.from({ length: 3000 }, () => Array.from({ length: 4 + Math.floor(rand() * 6) }, () => letters[Math.floor(rand() * 26)]).join(''));
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  // Which sessions get which planted word: distinct sessions, chosen up front.
  const plantAt = new Map<number, string>();
  for (const count of PLANTS) {
    let placed = 0;
    while (placed < count) {
      const i = Math.floor(rand() * size);
      if (plantAt.has(i)) continue;
      plantAt.set(i, plantWord(count));
      placed++;
    }
  }
  const planted: Record<string, Planted[]> = Object.fromEntries(PLANTS.map((c) => [plantWord(c), []]));
  const step = Math.floor((90 * DAY) / size);
  const BATCH = 5000;
  const t0 = Date.now();
  for (let from = 0; from < size; from += BATCH) {
    await store.batch(async () => {
      for (let i = from; i < Math.min(size, from + BATCH); i++) {
        clock.advance(step);
        const id = `${(clock.now()).toString(36)}-${String(i).padStart(7, '0')}`;
        const user = userName(Math.floor(rand() * USERS));
        const host = hostName(Math.floor(rand() * HOSTS));
        await store.sessions.open({ id, user, keyFingerprint: 'SHA256:bench', sourceAddr: '10.0.0.1', mode: 'exec', node: 'bench' });
        await store.sessions.setTarget(id, host, 'root', 1);
        const words = Array.from({ length: 20 + Math.floor(rand() * 20) }, () => pick(vocab));
        if (rand() < 0.2) words.splice(Math.floor(rand() * words.length), 0, COMMON);
        if (rand() < 0.05) words.splice(Math.floor(rand() * words.length), 0, 'segfault');
        const plant = plantAt.get(i);
        if (plant) {
          words.splice(Math.floor(rand() * words.length), 0, plant);
          planted[plant]!.push({ id, user, host, startedAt: clock.now() });
        }
        const command = `${pick(['systemctl status', 'tail -n 50', 'grep -r', 'journalctl -u'])} ${pick(vocab)}`;
        await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command, pty: false, host, login: 'root' });
        await store.search.index(id, 0, [{ t: 0.2, text: `root@${host}:~# ${command}\n${words.join(' ')}\n` }]);
        const r = rand();
        if (r < 0.02) continue; // live
        await store.sessions.close(id, r < 0.1 ? 'interrupted' : r < 0.2 ? 'revoked:grant_removed' : 'client_closed', 100, 2000);
      }
    });
    if ((from / BATCH) % 20 === 19) log(`search data set ${size}: ${from + BATCH} sessions, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  await store.close();
  const ds: Dataset = { size, data, planted, end: clock.now(), auditors, ...(url ? { store: url } : {}) };
  fs.writeFileSync(meta, JSON.stringify(ds));
  log(`search data set ${size} (${backend.kind}): built in ${((Date.now() - t0) / 1000).toFixed(0)} s${backend.kind === 'sqlite' ? `, ${(fs.statSync(dd.paths.db).size / 1024 ** 2).toFixed(0)} MiB` : ''}`);
  return ds;
}

/** A fresh database of the bench's cluster. */
async function createDatabase(pg: Postgres, name: string): Promise<string> {
  const { default: pgm } = await import('pg');
  const c = new pgm.Client({ connectionString: pg.urlOf('postgres') });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name}`);
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return pg.urlOf(name);
}

/** A logged-in web client: real login form (password + TOTP code from oathtool), cookies kept. */
async function webLogin(base: string, who: Dataset['auditors'][number]): Promise<(url: string) => Promise<{ status: number; body: string }>> {
  const jar = new Map<string, string>();
  const keep = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const form = await fetch(`${base}/login`);
  keep(form);
  const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
  const code = execFileSync('oathtool', ['--totp', '-b', who.secret], { encoding: 'utf8' }).trim();
  const res = await fetch(`${base}/login`, {
    method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookie(), origin: base },
    body: new URLSearchParams({ _csrf: token, username: who.name, password: who.password, code }).toString(),
  });
  keep(res);
  if (res.headers.get('location') !== '/sessions') throw new Error(`bench web login failed (${res.status} → ${res.headers.get('location')})`);
  return async (url) => {
    const r = await fetch(`${base}${url}`, { headers: { cookie: cookie() } });
    return { status: r.status, body: await r.text() };
  };
}

async function serve(ds: Dataset, procs: Proc[]): Promise<{ base: string; proc: Proc }> {
  const web = await freePort();
  const cfg = path.join(path.dirname(ds.data), 'bench.yaml');
  fs.writeFileSync(cfg, `log:\n  level: warn\n${ds.store ? `store: ${JSON.stringify(ds.store)}\n` : ''}`);
  const p = startProc(process.execPath, [path.resolve('bin/gatehouse.js'), 'serve', '--data', ds.data, '--config', cfg, '--ssh-listen', `127.0.0.1:${await freePort()}`, '--web-listen', `127.0.0.1:${web}`],
    { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' } });
  procs.push(p);
  await p.waitFor(/web UI on/, 300_000);
  return { base: `http://127.0.0.1:${web}`, proc: p };
}

/** The ids on every page of a search, read from the rendered list (bounded by the page count). */
async function walkPages(get: (u: string) => Promise<{ status: number; body: string }>, query: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let page = 1; page <= 1000; page++) {
    const r = await get(`/sessions?${query}&page=${page}`);
    if (r.status !== 200) throw new Error(`GET /sessions?${query} → ${r.status}`);
    const found = [...r.body.matchAll(/<tr[^>]*><td><a href="\/sessions\/([^"?]+)/g)].map((m) => decodeURIComponent(m[1]!));
    found.forEach((id) => ids.add(id));
    if (!r.body.includes('>next</a>')) break;
  }
  return ids;
}

export interface SearchRow { size: number; kind: string; medianMs: number; runs: number[] }
export type StoreKind = 'sqlite' | 'postgres';

/** BENCH_STORE: which stores the search scenario runs on. */
export function searchStores(): StoreKind[] {
  const v = process.env.BENCH_STORE ?? 'sqlite';
  if (v === 'both') return ['sqlite', 'postgres'];
  if (v === 'sqlite' || v === 'postgres') return [v];
  throw new Error(`BENCH_STORE: sqlite, postgres or both, got "${v}"`);
}

/** The scenario on one store: SQLite as always, or PostgreSQL on a throw-away cluster (stopped and removed at the end). */
export async function searchScenario(procs: Proc[], log: (...a: unknown[]) => void, kind: StoreKind = 'sqlite'): Promise<{ rows: SearchRow[]; firstQuery: Record<number, number> }> {
  if (kind === 'sqlite') return searchOn({ kind: 'sqlite' }, procs, log);
  const pg = await startPostgres();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-search-pg-'));
  const mine = procs.length;
  try {
    return await searchOn({ kind: 'postgres', pg, root }, procs, log);
  } finally {
    // Servers on this cluster still running (a failed run) stop before it does.
    for (const p of procs.splice(mine)) await p.stop().catch(() => undefined);
    await pg.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function searchOn(backend: Backend, procs: Proc[], log: (...a: unknown[]) => void): Promise<{ rows: SearchRow[]; firstQuery: Record<number, number> }> {
  const sizes = (process.env.BENCH_SEARCH_SIZES ?? '10000,100000,1000000').split(',').map(Number).filter((n) => n > 0);
  const cache = process.env.BENCH_SEARCH_CACHE ?? path.join(os.tmpdir(), 'gatehouse-bench-search');
  const rows: SearchRow[] = [];
  const firstQuery: Record<number, number> = {};
  for (const size of sizes) {
    const ds = await dataset(size, cache, log, backend);
    const rare = plantWord(7);
    const p0 = ds.planted[rare]![0]!;
    const weekAgo = new Date(ds.end - 7 * DAY).toISOString().slice(0, 10);
    const kinds: [string, string][] = [
      ['list, first page', ''],
      ['list, page 20', 'page=20'],
      ['filter: user', `user=${p0.user}`],
      ['filter: host', `host=${p0.host}`],
      ['filter: status interrupted', 'status=interrupted'],
      ['filter: since 7 days', `since=${weekAgo}`],
      ['text: rare word (7 sessions)', `q=${rare}`],
      ['text: 1000 sessions', `q=${plantWord(1000)}`],
      ['text: segfault (5%)', 'q=segfault'],
      [`text: ${COMMON} (20%)`, `q=${COMMON}`],
      [`text: ${COMMON} + user`, `q=${COMMON}&user=${p0.user}`],
      [`text: ${COMMON} + status`, `q=${COMMON}&status=interrupted`],
      ['text: no hit', 'q=qqqzzzqqq'],
    ];

    // The first query after a start: the server is fresh, its caches cold (the OS page cache is not).
    let srv = await serve(ds, procs);
    let get = await webLogin(srv.base, ds.auditors[0]!);
    const t0 = performance.now();
    const first = await get(`/sessions?q=${rare}`);
    firstQuery[size] = performance.now() - t0;
    if (first.status !== 200) throw new Error(`first search → ${first.status}`);
    await srv.proc.stop();
    procs.splice(procs.indexOf(srv.proc), 1);

    srv = await serve(ds, procs);
    get = await webLogin(srv.base, ds.auditors[1]!);
    // Every planted session is found, with and without filters, through every page.
    for (const [word, want] of Object.entries(ds.planted)) {
      if (want.length > 200) continue; // the 1000-session word is timed, its pages walked by the contract test
      const check = async (query: string, expected: Planted[]) => {
        const got = await walkPages(get, query);
        const missing = expected.filter((p) => !got.has(p.id));
        if (missing.length || got.size !== expected.length) throw new Error(`search ${query}: ${got.size} found, ${expected.length} planted, ${missing.length} missing`);
      };
      await check(`q=${word}`, want);
      await check(`q=${word}&user=${want[0]!.user}`, want.filter((p) => p.user === want[0]!.user));
      await check(`q=${word}&host=${want[0]!.host}`, want.filter((p) => p.host === want[0]!.host));
      const since = new Date(want[0]!.startedAt).toISOString();
      await check(`q=${word}&since=${encodeURIComponent(since)}`, want.filter((p) => p.startedAt >= want[0]!.startedAt));
    }
    for (const [kind, query] of kinds) {
      await get(`/sessions?${query}`); // one warm-up: the median is of steady state; the first query is its own row
      const runs: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const t = performance.now();
        const r = await get(`/sessions?${query}`);
        runs.push(performance.now() - t);
        if (r.status !== 200) throw new Error(`${kind} → ${r.status}`);
      }
      const sorted = [...runs].sort((a, b) => a - b);
      rows.push({ size, kind, medianMs: sorted[Math.floor(RUNS / 2)]!, runs });
      log(`search ${backend.kind} ${size}: ${kind}: median ${sorted[Math.floor(RUNS / 2)]!.toFixed(1)} ms`);
    }
    await srv.proc.stop();
    procs.splice(procs.indexOf(srv.proc), 1);
  }
  return { rows, firstQuery };
}
