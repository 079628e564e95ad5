import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/shared/clock.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import { gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';

/** `gatehouse sessions search` (the built binary) gives the store query's answers: exact count, every match. */
const T0 = Date.UTC(2026, 8, 1);
const MATCHES = 1030;
interface Found { total: number; exact: boolean; offset: number; sessions: { id: string; user: string; status: string; hit: { channel: number; t: number } | null }[] }

describe('gatehouse sessions search', () => {
  let data: string;
  beforeAll(async () => {
    data = path.join(tempDir(), 'data');
    ghOk(data, ['user', 'add', 'alice']); // creates the data directory and the database
    const clock = new ManualClock(T0);
    const store = createSqliteStore(path.join(data, 'gatehouse.db'), clock);
    for (let i = 0; i < MATCHES + 10; i++) {
      clock.advance(3_600_000);
      const id = `cli-${String(i).padStart(5, '0')}`;
      await store.sessions.open({ id, user: i % 3 === 0 ? 'alice' : 'bob', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell', node: 'n1' });
      await store.sessions.setTarget(id, i % 2 ? 'db1' : 'web1', 'root', 1);
      await store.search.index(id, 2, [{ t: 1.25, text: i < MATCHES ? 'sudo rm -rf /srv/cache' : 'rm -f one file' }]);
      await store.sessions.close(id, i % 4 === 0 ? 'killed' : 'client_closed', 0, 0);
    }
    store.close();
  }, 60_000);

  it('counts every match and walks them all with --offset (more than the old 1000 cut)', () => {
    const first = ghJson<Found>(data, ['sessions', 'search', 'rm -rf', '--limit', '600']);
    expect(first).toMatchObject({ total: MATCHES, exact: true, offset: 0 });
    expect(first.sessions[0]).toMatchObject({ id: `cli-${String(MATCHES - 1).padStart(5, '0')}`, hit: { channel: 2, t: 1.25 } });
    const rest = ghJson<Found>(data, ['sessions', 'search', 'rm -rf', '--limit', '600', '--offset', '600']);
    const ids = [...first.sessions, ...rest.sessions].map((s) => s.id);
    expect(new Set(ids).size).toBe(MATCHES);
    expect(ids.at(-1)).toBe('cli-00000');
  });

  it('filters like the web page: user, host, since/until, status', () => {
    const want = (f: (i: number) => boolean) => [...Array(MATCHES).keys()].filter(f).length;
    const total = (...args: string[]) => ghJson<Found>(data, ['sessions', 'search', 'rm -rf', '--limit', '1', ...args]).total;
    expect(total('--user', 'alice')).toBe(want((i) => i % 3 === 0));
    expect(total('--host', 'db1')).toBe(want((i) => i % 2 === 1));
    expect(total('--status', 'terminated')).toBe(want((i) => i % 4 === 0));
    expect(total('--status', 'ended', '--user', 'bob', '--host', 'web1')).toBe(want((i) => i % 4 !== 0 && i % 3 !== 0 && i % 2 === 0));
    // Session i starts at T0 + (i + 1) h.
    const since = new Date(T0 + 101 * 3_600_000).toISOString();
    const until = new Date(T0 + 201 * 3_600_000).toISOString();
    expect(total('--since', since, '--until', until)).toBe(100);
  });

  it('prints a table with the hit and the count, and refuses bad input with a usage error', () => {
    const out = ghOk(data, ['sessions', 'search', 'rm -rf', '--user', 'alice', '--limit', '3']);
    expect(out).toMatch(/^ID\s+USER\s+TARGET\s+STARTED\s+STATUS\s+HIT/);
    expect(out).toMatch(/cli-01029\s+alice\s+root@db1\s+\S+\s+ended\s+2@1\.25/);
    expect(out).toContain(`1-3 of ${Math.ceil(MATCHES / 3)} session(s) (next: --offset 3)`);
    expect(ghOk(data, ['sessions', 'search', 'no such text'])).toBe('0 session(s)\n');
    // FTS syntax is text: nothing matches it literally.
    expect(ghJson<Found>(data, ['sessions', 'search', 'rm OR sudo']).total).toBe(0);
    const cases: [string[], number][] = [
      [['rm'], 2], [['rm -rf', '--status', 'dead'], 2], [['rm -rf', '--limit', 'x'], 2], [['rm -rf', '--limit', '0'], 2],
      [['rm -rf', '--since', 'yesterday'], 1], // as in `sessions list`
    ];
    for (const [args, code] of cases) {
      const r = gh(data, ['sessions', 'search', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(/^gatehouse: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
