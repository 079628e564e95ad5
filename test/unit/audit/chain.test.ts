import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { draft } from '../../../src/audit/events.js';
import { admin, tempStore } from '../../helpers/store.js';

async function storeWithEvents() {
  const t = tempStore();
  await t.store.users.add('alice', ['operator'], admin);
  await t.store.users.add('bob', ['auditor'], admin);
  await t.store.groups.add('ops', admin);
  await t.store.audit.append(draft('server.start', 'system', { version: 't', ssh: 'a', web: 'b' }));
  return t;
}

describe('audit chain', () => {
  it('links every row to the one before it', async () => {
    const { store } = await storeWithEvents();
    const rows = await store.audit.list({});
    expect(rows.map((r) => r.type)).toEqual(['admin.user.add', 'admin.user.add', 'admin.group.add', 'server.start']);
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.prevHash).toBe(rows[i - 1]!.hash);
    expect(await store.audit.verify()).toMatchObject({ ok: true, rows: 4 });
  });

  it('refuses UPDATE and DELETE through SQL', async () => {
    const { store, file } = await storeWithEvents();
    store.close();
    const db = new Database(file);
    expect(() => db.prepare("UPDATE audit_log SET actor = 'mallory' WHERE id = 2").run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM audit_log WHERE id = 2').run()).toThrow(/append-only/);
    db.close();
  });

  it('detects a changed row', async () => {
    const { store, file } = await storeWithEvents();
    store.close();
    const db = new Database(file);
    db.exec('DROP TRIGGER audit_log_no_update');
    db.prepare(`UPDATE audit_log SET data = '{"user":"mallory","roles":["admin"]}' WHERE id = 2`).run();
    db.close();
    const { createSqliteStore } = await import('../../../src/store/sqlite/index.js');
    const reopened = createSqliteStore(file, { now: () => 0 });
    expect(await reopened.audit.verify()).toMatchObject({ ok: false, badId: 2 });
    reopened.close();
  });

  it('detects a removed row', async () => {
    const { store, file } = await storeWithEvents();
    store.close();
    const db = new Database(file);
    db.exec('DROP TRIGGER audit_log_no_delete');
    db.prepare('DELETE FROM audit_log WHERE id = 2').run();
    db.close();
    const { createSqliteStore } = await import('../../../src/store/sqlite/index.js');
    const reopened = createSqliteStore(file, { now: () => 0 });
    expect(await reopened.audit.verify()).toMatchObject({ ok: false, badId: 3 });
    reopened.close();
  });

  it('filters by type prefix, user and time', async () => {
    const { store, clock } = await storeWithEvents();
    clock.advance(60_000);
    await store.users.setDisabled('alice', true, 'left', admin);
    expect((await store.audit.list({ type: 'admin.user' })).length).toBe(3);
    expect((await store.audit.list({ type: 'admin.*' })).length).toBe(4);
    expect((await store.audit.list({ type: 'admin.user.disable' })).map((r) => r.subject)).toEqual(['alice']);
    expect((await store.audit.list({ user: 'alice' })).map((r) => r.type)).toEqual(['admin.user.add', 'admin.user.disable']);
    expect((await store.audit.list({ since: clock.now() })).length).toBe(1);
  });

  it('lists the events of one session by an index', async () => {
    const { store } = await storeWithEvents();
    for (const session of ['s-1', 's-2', 's-1']) {
      await store.audit.append(draft('session.start', 'system', { session, user: 'alice', source: '10.0.0.1', key: 'k' }));
    }
    expect((await store.audit.list({ session: 's-1' })).map((e) => e.data.session)).toEqual(['s-1', 's-1']);
    expect(await store.audit.list({ session: 'none' })).toEqual([]);
  });
});
