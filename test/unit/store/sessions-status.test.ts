import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/shared/clock.js';
import { openDatabase } from '../../../src/store/sqlite/db.js';
import { createSqliteStore } from '../../../src/store/sqlite/index.js';
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js';
import { sessionStatus } from '../../../src/store/types.js';
import { tempDir } from '../../helpers/cli.js';
import { forEachBackend } from './backends.js';

/** End reasons the server writes, and edge cases of the prefix rules. */
const REASONS = [
  null, 'client_closed', 'server_closed', 'interrupted', 'revoked:user_disabled', 'killed', 'killed:web', 'idle_timeout',
  'max_duration', 'grant_expired', 'host_disabled', 'hostile', 'error', '', 'Interrupted', 'xrevoked',
];

describe('sessions.status: a stored column', () => {
  it('the migration backfills it with the same rules as sessionStatus()', () => {
    const file = path.join(tempDir(), 'g.db');
    const raw = new Database(file);
    const at = MIGRATIONS.findIndex((m) => m.includes('ADD COLUMN status'));
    expect(at).toBeGreaterThan(0);
    for (const m of MIGRATIONS.slice(0, at)) raw.exec(m);
    raw.pragma(`user_version = ${at}`);
    const insert = raw.prepare("INSERT INTO sessions (id, user_name, source_addr, mode, started_at, ended_at, end_reason) VALUES (?, 'u', '10.0.0.1', 'shell', 1, ?, ?)");
    insert.run('live', null, null);
    REASONS.forEach((r, i) => insert.run(`s${i}`, 2, r));
    raw.close();

    const db = openDatabase(file);
    const rows = db.prepare('SELECT id, ended_at, end_reason, status FROM sessions').all() as { id: string; ended_at: number | null; end_reason: string | null; status: string }[];
    expect(rows).toHaveLength(REASONS.length + 1);
    for (const r of rows) expect(r.status, `${r.id} ${r.end_reason}`).toBe(sessionStatus({ endedAt: r.ended_at, endReason: r.end_reason }));
    db.close();
  });

  it('the migration keeps text indexed before it searchable, with its hits, and later text appends', async () => {
    const file = path.join(tempDir(), 'g.db');
    const raw = new Database(file);
    const at = MIGRATIONS.findIndex((m) => m.includes('ADD COLUMN status'));
    for (const m of MIGRATIONS.slice(0, at)) raw.exec(m);
    raw.pragma(`user_version = ${at}`);
    const insert = raw.prepare("INSERT INTO sessions (id, user_name, source_addr, mode, started_at, ended_at, end_reason) VALUES (?, 'u', '10.0.0.1', 'shell', ?, 3, 'client_closed')");
    const text = raw.prepare('INSERT INTO session_text (session_id, channel, t, chunk) VALUES (?, ?, ?, ?)');
    // Interleaved, as closing channels of concurrent sessions would write them.
    for (const id of ['old-a', 'old-b', 'old-c']) insert.run(id, id === 'old-b' ? 2 : 1);
    text.run('old-a', 1, 7, 'first: quasar here');
    text.run('old-b', 0, 2, 'quasar too');
    text.run('orphan-1', 0, 1, 'quasar of no session');
    text.run('old-a', 0, 5, 'quasar in channel 0');
    text.run('orphan-2', 0, 1, 'quasar again');
    text.run('old-c', 0, 1, 'nothing');
    raw.close();

    const store = createSqliteStore(file, new ManualClock(10));
    const r = await store.sessions.query({ text: 'quasar', limit: 10, offset: 0 });
    expect(r.total).toBe(2);
    expect(r.items.map((i) => [i.session.id, { channel: i.hit?.channel, t: i.hit?.t }])).toEqual([['old-b', { channel: 0, t: 2 }], ['old-a', { channel: 0, t: 5 }]]);
    expect((await store.search.find('quasar', 100)).map((h) => h.sessionId).sort()).toEqual(['old-a', 'old-a', 'old-b', 'orphan-1', 'orphan-2']);
    await store.search.index('old-c', 3, [{ t: 8, text: 'quasar late' }]);
    await store.sessions.open({ id: 'new-1', user: 'u', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell' });
    await store.search.index('new-1', 0, [{ t: 0.5, text: 'quasar new' }]);
    const after = await store.sessions.query({ text: 'quasar', limit: 10, offset: 0 });
    expect(after.items.map((i) => [i.session.id, { channel: i.hit?.channel, t: i.hit?.t }])).toEqual([
      // Text results come in the order sessions opened (text_key), here old-c before old-b, which started earlier.
      ['new-1', { channel: 0, t: 0.5 }], ['old-c', { channel: 3, t: 8 }], ['old-b', { channel: 0, t: 2 }], ['old-a', { channel: 0, t: 5 }],
    ]);
    await expect(store.search.index('no-such', 0, [{ t: 0, text: 'x' }])).rejects.toThrow(/no session/);
    store.close();
  });

});

forEachBackend('sessions.status: a stored column, kept by the store', (make) => {
  it('close and closeInterrupted keep it up to date', async () => {
    const { store, sql } = await make();
    for (const [i, r] of REASONS.entries()) {
      await store.sessions.open({ id: `s${i}`, user: 'u', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell', node: 'n1' });
      if (r !== null) await store.sessions.close(`s${i}`, r, 0, 0);
    }
    await store.sessions.open({ id: 'crashed', user: 'u', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell', node: 'n1' });
    await store.sessions.open({ id: 'elsewhere', user: 'u', keyFingerprint: 'k', sourceAddr: '10.0.0.1', mode: 'shell', node: 'n2' });
    expect((await store.sessions.closeInterrupted('n1')).sort()).toEqual(['crashed', 's0']);
    const status = new Map((await sql<{ id: string; status: string }>('SELECT id, status FROM sessions')).map((r) => [r.id, r.status]));
    for (const [i, r] of REASONS.entries()) {
      const s = (await store.sessions.get(`s${i}`))!;
      expect(status.get(s.id), `${s.id} ${r}`).toBe(sessionStatus(s));
    }
    expect(status.get('crashed')).toBe('interrupted');
    expect(status.get('elsewhere')).toBe('live');
    // A session closed twice keeps its first end.
    await store.sessions.close('s1', 'killed', 0, 0);
    expect((await store.sessions.query({ status: 'ended', limit: 100, offset: 0 })).items.map((i) => i.session.id)).toContain('s1');
    await store.close();
  });
});
