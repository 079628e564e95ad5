import { describe, expect, it } from 'vitest';
import type { Right } from '../../../src/audit/events.js';
import { authorize, isGrant, maySsh, reachableTargets, type AccessRequest } from '../../../src/auth/policy.js';
import type { GrantRecord, HostRecord, UserRecord } from '../../../src/store/types.js';

const NOW = Date.UTC(2026, 10, 24, 12);

const alice: UserRecord = { id: 1, name: 'alice', roles: ['operator'], disabled: false, disabledReason: null, hasPassword: false, totpEnrolled: true, requireSecurityKey: false, groups: ['ops'], createdAt: 0 };
const web1: HostRecord = { id: 1, name: 'web1', address: '10.0.0.5', port: 22, hostKey: 'ssh-ed25519 AAAA', enabled: true, groups: ['web'], createdAt: 0 };

let nextId = 1;
function grant(partial: Partial<GrantRecord>): GrantRecord {
  return { id: nextId++, who: { kind: 'user', name: 'alice' }, where: { kind: 'host', name: 'web1' }, logins: ['deploy'], rights: ['shell', 'exec', 'sftp'], until: null, reason: '', createdBy: 't', createdAt: 0, ...partial };
}

const req = (over: Partial<AccessRequest> = {}): AccessRequest => ({ user: alice, host: web1, login: 'deploy', action: 'shell', ...over });

type Row = [string, AccessRequest, GrantRecord[], 'allow' | string];
const table: Row[] = [
  ['default deny', req(), [], 'no_grant'],
  ['direct user grant', req(), [grant({})], 'allow'],
  ['group grant', req(), [grant({ who: { kind: 'group', name: 'ops' } })], 'allow'],
  ['group the user is not in', req(), [grant({ who: { kind: 'group', name: 'dba' } })], 'no_grant'],
  ['another user', req(), [grant({ who: { kind: 'user', name: 'bob' } })], 'no_grant'],
  ['host group', req(), [grant({ where: { kind: 'host-group', name: 'web' } })], 'allow'],
  ['other host group', req(), [grant({ where: { kind: 'host-group', name: 'db' } })], 'no_grant'],
  ['all hosts', req(), [grant({ where: { kind: 'all' } })], 'allow'],
  ['other host', req(), [grant({ where: { kind: 'host', name: 'web2' } })], 'no_grant'],
  ['login not granted', req({ login: 'root' }), [grant({})], 'login_not_granted'],
  ['one of several logins', req({ login: 'root' }), [grant({ logins: ['deploy', 'root'] })], 'allow'],
  ['right not granted', req({ action: 'forward' }), [grant({})], 'right_not_granted'],
  ['forward granted', req({ action: 'forward' }), [grant({ rights: ['forward'] as Right[] })], 'allow'],
  ['expired grant', req(), [grant({ until: NOW - 1 })], 'grant_expired'],
  ['expires exactly now', req(), [grant({ until: NOW })], 'grant_expired'],
  ['not yet expired', req(), [grant({ until: NOW + 1 })], 'allow'],
  ['expired one, live other', req(), [grant({ until: NOW - 1 }), grant({ where: { kind: 'all' } })], 'allow'],
  ['disabled user never passes', req({ user: { ...alice, disabled: true } }), [grant({})], 'user_disabled'],
  ['disabled host never passes', req({ host: { ...web1, enabled: false } }), [grant({})], 'host_disabled'],
  ['auditor only', req({ user: { ...alice, roles: ['auditor'] } }), [grant({})], 'not_operator'],
];

describe('authorize', () => {
  it.each(table)('%s', (_name, request, grants, expected) => {
    const d = authorize(request, grants, NOW);
    if (expected === 'allow') {
      expect(d.allow).toBe(true);
      if (d.allow) {
        expect(isGrant(d.grant)).toBe(true);
        expect(d.grant).toMatchObject({ user: 'alice', host: 'web1', address: '10.0.0.5', login: request.login });
      }
    } else {
      expect(d).toMatchObject({ allow: false, reason: expected });
    }
  });

  it('names the deciding grant, the lowest id that matches', () => {
    const a = grant({ where: { kind: 'all' } });
    const b = grant({});
    const d = authorize(req(), [b, a], NOW);
    expect(d.allow && d.grant.grantId).toBe(Math.min(a.id, b.id));
  });

  it('a Grant cannot be forged by copying one', () => {
    const d = authorize(req(), [grant({})], NOW);
    expect(d.allow).toBe(true);
    if (d.allow) {
      expect(isGrant({ ...d.grant })).toBe(false);
      expect(Object.isFrozen(d.grant)).toBe(true);
    }
  });
});

describe('what a user may reach, derived from authorize()', () => {
  it('reachable pairs carry the grant authorize() minted; maySsh needs a session right, not forward alone', () => {
    const gs = [grant({ logins: ['deploy', 'root'], rights: ['exec'] as Right[] }), grant({ where: { kind: 'host', name: 'web2' }, rights: ['forward'] as Right[] })];
    const r = reachableTargets(alice, [web1], gs, 'exec', NOW);
    expect(r.map((x) => x.login)).toEqual(['deploy', 'root']);
    expect(r.every((x) => isGrant(x.grant) && x.grant.grantId === x.grantId && x.grant.login === x.login)).toBe(true);
    const web2: HostRecord = { ...web1, id: 2, name: 'web2' };
    expect(maySsh(alice, web1, gs, NOW)).toBe(true);
    expect(maySsh(alice, web2, gs, NOW)).toBe(false);
    expect(maySsh({ ...alice, disabled: true }, web1, gs, NOW)).toBe(false);
  });
});
