import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { hashPassword } from '../../../src/auth/password.js';
import { loadConfig } from '../../../src/config/load.js';
import { openDataDir } from '../../../src/datadir/datadir.js';
import { seal } from '../../../src/datadir/seal.js';
import { LiveHub } from '../../../src/recorder/livehub.js';
import { ManualClock } from '../../../src/shared/clock.js';
import { tempDir } from '../../helpers/cli.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import type { Store } from '../../../src/store/types.js';
import { createWebServer, type WebDeps } from '../../../src/web/server.js';
import { totpAt } from '../../helpers/totp.js';

/** One web UI on a temp data directory with a manual clock: users aud (auditor), boss (admin), op (operator). */
export const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
export const PASSWORD = 'correct horse battery staple';
const meta = { actor: 'test' };

export interface WebFixture {
  app: FastifyInstance;
  store: Store;
  clock: ManualClock;
  hub: LiveHub;
  db: string;
  masterKey: Buffer;
  /** Rows in a table, read through a separate connection (what is on disk). */
  rows(table: string): number;
  /** One row of a read-only query against the database file. */
  one<T>(sql: string, ...args: unknown[]): T | undefined;
  addViewer(name: string, roles?: string[]): Promise<void>;
  close(): Promise<void>;
}

export async function startWeb(opts: { webOrigin?: string; deps?: Partial<WebDeps> } = {}): Promise<WebFixture> {
  const dir = tempDir('gatehouse-web-');
  const dataDir = openDataDir(path.join(dir, 'data'));
  const clock = new ManualClock(Date.UTC(2026, 10, 24, 12, 0, 0));
  const store = createSqliteStore(dataDir.paths.db, clock);
  const hash = await hashPassword(PASSWORD);
  const addViewer = async (name: string, roles: string[] = ['auditor']) => {
    await store.users.add(name, roles as never, meta);
    await store.users.setPassword(name, hash, meta);
    await store.totp.enroll(name, (uid) => seal(dataDir.masterKey, Buffer.from(SECRET), `totp:user:${uid}`), true, meta);
  };
  await addViewer('aud');
  await addViewer('boss', ['admin']);
  await addViewer('op', ['operator']);
  await store.hosts.add({ name: 'web1', address: '10.0.0.5', port: 22, groups: [], hostKey: null, hostKeyFingerprint: null }, meta);
  await store.grants.add({ who: { kind: 'user', name: 'op' }, where: { kind: 'host', name: 'web1' }, logins: ['deploy'], rights: ['shell'], until: null, reason: '' }, meta);
  await store.sessions.open({ id: 'sess-1', user: 'op', keyFingerprint: 'SHA256:x', sourceAddr: '10.9.9.9', mode: 'command' });
  await store.sessions.setTarget('sess-1', 'web1', 'deploy', 1);
  const loaded = loadConfig({ data: path.join(dir, 'data') }, {});
  const config = opts.webOrigin ? { ...loaded, web: { ...loaded.web, origin: opts.webOrigin } } : loaded;
  const hub = new LiveHub();
  const app = await createWebServer({ config, store, clock, log: silentLogger(), dataDir, hub, liveCount: () => 0, liveBytes: () => 0, ...opts.deps });
  const reader = new Database(dataDir.paths.db, { readonly: true, fileMustExist: true });
  return {
    app, store, clock, hub, db: dataDir.paths.db, masterKey: dataDir.masterKey, addViewer,
    rows: (table) => (reader.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n,
    one: <T>(sql: string, ...args: unknown[]) => reader.prepare(sql).get(...args) as T | undefined,
    async close() {
      await app.close();
      reader.close();
      store.close();
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/** A browser's cookie jar, reduced to name=value pairs; removal cookies (empty or expired) delete. */
export class Jar {
  readonly cookies = new Map<string, string>();
  get header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  take(res: { headers: Record<string, unknown> }): void {
    const set = res.headers['set-cookie'];
    for (const c of (Array.isArray(set) ? set : set ? [set] : []) as string[]) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      const [name, value] = [pair!.slice(0, eq), pair!.slice(eq + 1)];
      if (value === '' || /Expires=Thu, 01 Jan 1970/i.test(c)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

export function csrfIn(body: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!m) throw new Error('no CSRF token in the page');
  return m[1]!;
}

export const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** GET with the jar's cookies; cookies the answer sets go into the jar. */
export async function get(f: WebFixture, jar: Jar, url: string, remoteAddress?: string) {
  const res = await f.app.inject({ method: 'GET', url, headers: jar.header ? { cookie: jar.header } : {}, ...(remoteAddress ? { remoteAddress } : {}) });
  jar.take(res);
  return res;
}

export async function post(f: WebFixture, jar: Jar, url: string, fields: Record<string, string>, remoteAddress?: string) {
  const res = await f.app.inject({ method: 'POST', url, headers: { ...FORM, ...(jar.header ? { cookie: jar.header } : {}) }, payload: form(fields), ...(remoteAddress ? { remoteAddress } : {}) });
  jar.take(res);
  return res;
}

/** Log in through the form (a fresh TOTP step each time); returns the jar and where it was sent. */
export async function login(f: WebFixture, user: string, o: { password?: string; code?: string; from?: string } = {}) {
  const jar = new Jar();
  const token = csrfIn((await get(f, jar, '/login', o.from)).body);
  f.clock.advance(30_000);
  const res = await post(f, jar, '/login', { _csrf: token, username: user, password: o.password ?? PASSWORD, code: o.code ?? totpAt(SECRET, f.clock.now() / 1000) }, o.from);
  return { jar, status: res.statusCode, location: String(res.headers.location) };
}
