import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../../../src/store/sqlite/db.js';
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js';
import { tempDir } from '../../helpers/cli.js';
import type { Store } from '../../../src/store/types.js';
import { admin, T0 } from '../../helpers/store.js';
import { forEachBackend, type MakeStore } from './backends.js';

const HOUR = 3_600_000;
let opened: Store | null = null;
afterEach(async () => { await opened?.close(); opened = null; });

async function world(make: MakeStore) {
  const t = await make();
  opened = t.store;
  const { store } = t;
  await store.users.add('bob', ['operator'], admin);
  await store.users.add('carol', ['approver'], admin);
  await store.hosts.add({ name: 'web1', address: '127.0.0.1', port: 22, groups: ['web'], hostKey: null, hostKeyFingerprint: null }, admin);
  return t;
}
const req = (over: Partial<{ login: string; expiresAt: number }> = {}) => ({
  user: 'bob', login: over.login ?? 'root', target: { kind: 'host' as const, name: 'web1' }, reason: 'incident', durationMs: HOUR, expiresAt: over.expiresAt ?? T0 + HOUR,
});

forEachBackend('access requests in the store', (make) => {
  it('the same request twice is one request; the per-user limit counts pending ones', async () => {
    const { store } = await world(make);
    const a = await store.requests.create(req(), { maxOpen: 2 });
    const again = await store.requests.create(req(), { maxOpen: 2 });
    expect(a.created).toBe(true);
    expect(again).toMatchObject({ created: false, request: { id: a.request.id } });
    await store.requests.create(req({ login: 'deploy' }), { maxOpen: 2 });
    await expect(store.requests.create(req({ login: 'www' }), { maxOpen: 2 })).rejects.toThrow(/already have 2 pending/);
    expect((await store.audit.list({ type: 'request.created' })).length).toBe(2);
  });

  it('approval makes a grant (source request:ID, until = approval + duration) through grant add; revoke removes it', async () => {
    const { store, clock } = await world(make);
    const { request } = await store.requests.create(req(), { maxOpen: 3 });
    clock.advance(60_000);
    const approved = await store.requests.decide(request.id, { kind: 'approve', by: 'carol', reason: 'go', durationMs: 20_000 }, { approvals: 1 });
    const grant = await store.grants.get(approved.grantId!);
    expect(grant).toMatchObject({ who: { kind: 'user', name: 'bob' }, where: { kind: 'host', name: 'web1' }, logins: ['root'], until: T0 + 60_000 + 20_000, source: `request:${request.id}`, createdBy: 'carol' });
    const types = (await store.audit.list({})).map((e) => e.type);
    expect(types).toContain('admin.grant.add');
    expect((await store.audit.list({ type: 'request.approved' }))[0]).toMatchObject({ actor: 'carol', data: { grant: grant!.id, reason: 'go' } });
    const v0 = await store.policy.version();
    await store.requests.decide(request.id, { kind: 'revoke', by: 'carol', reason: 'over' }, { approvals: 1 });
    expect(await store.grants.get(grant!.id)).toBeNull();
    expect(await store.policy.version()).toBeGreaterThan(v0);
    expect((await store.audit.list({ type: 'admin.grant.remove' })).length).toBe(1);
    expect((await store.audit.verify()).ok).toBe(true);
  });

  it('an admin removing the grant a request made revokes the request with it, in the same change', async () => {
    const { store } = await world(make);
    const { request } = await store.requests.create(req(), { maxOpen: 3 });
    const approved = await store.requests.decide(request.id, { kind: 'approve', by: 'carol', reason: 'go' }, { approvals: 1 });
    await store.grants.remove(approved.grantId!, { actor: 'cli:root' });
    expect(await store.requests.get(request.id)).toMatchObject({ state: 'revoked', decidedBy: 'cli:root', decisionReason: `grant #${approved.grantId} removed` });
    const last = (await store.audit.list({})).slice(-2).map((e) => [e.type, e.actor]);
    expect(last).toEqual([['admin.grant.remove', 'cli:root'], ['request.revoked', 'cli:root']]);
    // Nothing left to revoke; a plain grant's removal touches no request.
    await expect(store.requests.decide(request.id, { kind: 'revoke', by: 'carol', reason: 'again' }, { approvals: 1 })).rejects.toThrow(/revoked/);
    const plain = await store.grants.add({ who: { kind: 'user', name: 'bob' }, where: { kind: 'host', name: 'web1' }, logins: ['root'], rights: ['shell'], until: null, reason: '' }, admin);
    await store.grants.remove(plain.id, admin);
    expect((await store.audit.list({ type: 'request.revoked' })).length).toBe(1);
    expect((await store.audit.verify()).ok).toBe(true);
  });

  it('a refusal changes nothing; a request past its time is expired (audited) instead of approved', async () => {
    const { store, clock } = await world(make);
    const { request } = await store.requests.create(req(), { maxOpen: 3 });
    await expect(store.requests.decide(request.id, { kind: 'approve', by: 'bob', reason: '' }, { approvals: 1 })).rejects.toThrow(/own request/);
    expect((await store.requests.get(request.id))!.state).toBe('pending');
    expect(await store.grants.list()).toEqual([]);
    clock.advance(HOUR);
    await expect(store.requests.decide(request.id, { kind: 'approve', by: 'carol', reason: '' }, { approvals: 1 })).rejects.toThrow(/expired/);
    expect((await store.requests.get(request.id))!.state).toBe('expired');
    expect((await store.audit.list({ type: 'request.expired' })).length).toBe(1);
    expect(await store.grants.list()).toEqual([]);
  });

  it('expireDue sweeps every pending request past its time, once', async () => {
    const { store, clock } = await world(make);
    await store.requests.create(req({ expiresAt: T0 + 1000 }), { maxOpen: 3 });
    await store.requests.create(req({ login: 'deploy', expiresAt: T0 + 5000 }), { maxOpen: 3 });
    clock.advance(2000);
    expect((await store.requests.expireDue()).map((r) => r.login)).toEqual(['root']);
    expect(await store.requests.expireDue()).toEqual([]);
    expect((await store.requests.list({ state: 'pending' })).map((r) => r.login)).toEqual(['deploy']);
  });
});

describe('the access-requests migration', () => {
  it('keeps every user role when it rebuilds user_roles for the approver role, with its policy triggers', () => {
    const mine = MIGRATIONS.findIndex((m) => m.includes('CREATE TABLE access_requests'));
    const db = new Database(path.join(tempDir(), 'old.db'));
    db.pragma('foreign_keys = ON');
    for (let v = 0; v < mine; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${mine}`);
    db.prepare("INSERT INTO users (name, created_at, updated_at) VALUES ('ann', 1, 1)").run();
    db.prepare("INSERT INTO user_roles (user_id, role) VALUES (1, 'admin'), (1, 'operator')").run();
    expect(() => db.prepare("INSERT INTO user_roles (user_id, role) VALUES (1, 'approver')").run()).toThrow(/CHECK/);
    migrate(db);
    expect(db.prepare('SELECT role FROM user_roles ORDER BY role').all()).toEqual([{ role: 'admin' }, { role: 'operator' }]);
    const v = () => Number((db.prepare("SELECT value FROM meta WHERE key = 'policy_version'").get() as { value: string }).value);
    const before = v();
    db.prepare("INSERT INTO user_roles (user_id, role) VALUES (1, 'approver')").run();
    expect(v()).toBe(before + 1);
    db.close();
  });
});
