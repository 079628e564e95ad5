import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import ssh2 from 'ssh2';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixtureKey, gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { totpAt } from '../helpers/totp.js';

/** Every row of every table, read straight from the SQLite file, to prove a refused command changed nothing. */
function snapshot(data: string): Record<string, unknown[]> {
  const file = path.join(data, 'gatehouse.db');
  if (!fs.existsSync(file)) return {};
  const db = new Database(file, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[];
    return Object.fromEntries(tables.map(({ name }) => [name, db.prepare(`SELECT * FROM "${name}"`).all()]));
  } finally {
    db.close();
  }
}

/** A refused command: the exit code, a one-line error naming the problem, and no change at all. */
function refused(data: string, args: string[], code: 1 | 2, message: RegExp, input?: string) {
  const before = snapshot(data);
  const r = gh(data, args, input === undefined ? {} : { input });
  expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(code);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/^gatehouse: /);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  expect(snapshot(data)).toEqual(before);
}

describe('gatehouse CLI (real binary, temp data dir)', () => {
  let data: string;
  let keyFile: string;
  beforeAll(() => {
    const dir = tempDir();
    data = path.join(dir, 'data');
    keyFile = path.join(dir, 'alice.pub');
    fs.writeFileSync(keyFile, fixtureKey('ed25519'));
  });

  it('runs the README walk-through and audits every change', () => {
    ghOk(data, ['user', 'add', 'alice']);
    expect(fs.statSync(data).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(data, 'gatehouse.db')).mode & 0o777).toBe(0o600);
    expect(ghOk(data, ['user', 'key', 'add', 'alice', keyFile])).toContain('SHA256:XecLrmgQDbeGrAzmKxGBl2huaQPljA10DpTmIXg9CQU');
    const totp = ghJson<{ secret: string; uri: string }>(data, ['user', 'totp', 'enroll', 'alice']);
    expect(totp.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(totp.uri).toContain(`secret=${totp.secret}`);
    expect(totpAt(totp.secret, Date.now() / 1000)).toMatch(/^\d{6}$/);
    ghOk(data, ['host', 'add', 'web1', '--address', '10.0.0.5', '--host-key', fixtureKey('ecdsa256').split(' ').slice(0, 2).join(' ')]);
    expect(ghOk(data, ['grant', 'add', '--user', 'alice', '--host', 'web1', '--login', 'deploy'])).toContain('added grant #1');
    const check = gh(data, ['access', 'check', 'alice', 'web1', 'deploy']);
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/^allow: alice may shell on web1 as deploy \(grant #1\)/);

    const audit = ghJson<{ type: string; actor: string; data: Record<string, unknown> }[]>(data, ['audit']);
    expect(audit.map((e) => e.type)).toEqual(['admin.user.add', 'admin.user.key.add', 'admin.user.totp.enroll', 'admin.host.add', 'admin.grant.add']);
    expect(audit.every((e) => e.actor.startsWith('cli:'))).toBe(true);
    // The TOTP secret never reaches the audit log.
    expect(JSON.stringify(audit)).not.toContain(totp.secret);
    // …nor the database in clear.
    expect(fs.readFileSync(path.join(data, 'gatehouse.db')).includes(Buffer.from(totp.secret))).toBe(false);
  });

  it('access check explains a denial and exits 1', () => {
    const r = gh(data, ['access', 'check', 'alice', 'web1', 'root']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^deny \(login_not_granted\)/);
    expect(r.stdout).toContain('grant #1');
    const j = JSON.parse(gh(data, ['access', 'check', 'alice', 'web1', 'deploy', '--action', 'forward', '--json']).stdout);
    expect(j).toMatchObject({ allow: false, reason: 'right_not_granted' });
  });

  it('users: roles, show, disable/enable, list --json', () => {
    ghOk(data, ['user', 'add', 'bob', '--role', 'auditor', '--role', 'admin']);
    expect(ghJson(data, ['user', 'show', 'bob'])).toMatchObject({ name: 'bob', roles: ['admin', 'auditor'], disabled: false, totp: false });
    ghOk(data, ['user', 'role', 'add', 'bob', 'operator']);
    ghOk(data, ['user', 'role', 'remove', 'bob', 'admin']);
    expect(ghJson(data, ['user', 'show', 'bob'])).toMatchObject({ roles: ['auditor', 'operator'] });
    ghOk(data, ['user', 'disable', 'bob', '--reason', 'left the company']);
    expect(ghJson(data, ['user', 'show', 'bob'])).toMatchObject({ disabled: true, disabledReason: 'left the company' });
    expect(gh(data, ['access', 'check', 'bob', 'web1', 'deploy']).stdout).toMatch(/^deny \(user_disabled\)/);
    ghOk(data, ['user', 'enable', 'bob']);
    const list = ghJson<{ name: string }[]>(data, ['user', 'list']);
    expect(list.map((u) => u.name)).toEqual(['alice', 'bob']);
    expect(ghOk(data, ['user', 'list'])).toMatch(/^NAME\s+ROLES/);
    const types = ghJson<{ type: string }[]>(data, ['audit', '--user', 'bob']).map((e) => e.type);
    expect(types).toEqual(['admin.user.add', 'admin.user.role.add', 'admin.user.role.remove', 'admin.user.disable', 'admin.user.enable']);
  });

  it('keys: add from stdin, several lines, list, remove', () => {
    ghOk(data, ['user', 'add', 'carol']);
    const out = ghOk(data, ['user', 'key', 'add', 'carol', '-'], { input: `# carol\n${fixtureKey('ecdsa256')}${fixtureKey('rsa2048')}` });
    expect(out.trim().split('\n')).toHaveLength(2);
    const keys = ghJson<{ fingerprint: string; type: string; bits: number }[]>(data, ['user', 'key', 'list', 'carol']);
    expect(keys.map((k) => [k.type, k.bits])).toEqual([['ecdsa-sha2-nistp256', 256], ['ssh-rsa', 2048]]);
    ghOk(data, ['user', 'key', 'remove', 'carol', keys[0]!.fingerprint]);
    expect(ghJson<unknown[]>(data, ['user', 'key', 'list', 'carol'])).toHaveLength(1);
    expect(ghJson<{ type: string; data: { fingerprint: string } }[]>(data, ['audit', '--type', 'admin.user.key.remove']).at(-1)!.data.fingerprint).toBe(keys[0]!.fingerprint);
  });

  it('TOTP: import a secret, refuse a second enrolment, reset', () => {
    ghOk(data, ['user', 'add', 'dave']);
    const j = ghJson<{ secret: string; uri: string }>(data, ['user', 'totp', 'enroll', 'dave', '--secret', 'jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp']);
    expect(j.secret).toBe('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
    const text = ghOk(data, ['user', 'totp', 'reset', 'dave']);
    expect(text).toContain('reset TOTP of dave');
    const plain = ghOk(data, ['user', 'totp', 'enroll', 'dave']);
    expect(plain).toMatch(/uri:\s+otpauth:\/\/totp\/gatehouse:dave\?secret=/);
    const audit = ghJson<{ type: string; data: Record<string, unknown> }[]>(data, ['audit', '--user', 'dave', '--type', 'admin.user.totp']);
    expect(audit.map((e) => [e.type, e.data.imported])).toEqual([['admin.user.totp.enroll', true], ['admin.user.totp.reset', undefined], ['admin.user.totp.enroll', false]]);
  });

  it('web password: read from stdin, stored as scrypt, audited without the password', () => {
    ghOk(data, ['user', 'password', 'bob'], { input: 'a long enough passphrase\n' });
    const db = new Database(path.join(data, 'gatehouse.db'), { readonly: true });
    const row = db.prepare("SELECT password_hash FROM users WHERE name = 'bob'").get() as { password_hash: string };
    db.close();
    expect(row.password_hash).toMatch(/^scrypt\$/);
    const audit = ghOk(data, ['audit', '--type', 'admin.user.password', '--json']);
    expect(audit).toContain('"user": "bob"');
    expect(audit).not.toContain('passphrase');
  });

  it('groups and group grants', () => {
    ghOk(data, ['group', 'add', 'ops']);
    ghOk(data, ['group', 'member', 'add', 'ops', 'carol']);
    expect(ghJson(data, ['group', 'list'])).toEqual([{ name: 'ops', members: ['carol'] }]);
    ghOk(data, ['host', 'add', 'db1', '--address', 'db1.internal', '--port', '2200', '--group', 'db']);
    ghOk(data, ['grant', 'add', '--group', 'ops', '--host-group', 'db', '--login', 'postgres,backup', '--allow', 'exec,sftp', '--for', '8h', '--reason', 'CHG-42']);
    expect(gh(data, ['access', 'check', 'carol', 'db1', 'backup', '--action', 'exec']).code).toBe(0);
    expect(gh(data, ['access', 'check', 'carol', 'db1', 'backup', '--action', 'shell']).code).toBe(1);
    const grants = ghJson<{ id: number; until: string; reason: string }[]>(data, ['grant', 'list', '--user', 'carol']);
    expect(grants).toHaveLength(1);
    const until = Date.parse(grants[0]!.until) - Date.now();
    expect(until).toBeGreaterThan(7.9 * 3600_000);
    expect(until).toBeLessThanOrEqual(8 * 3600_000);
    expect(grants[0]!.reason).toBe('CHG-42');
    expect(ghJson<unknown[]>(data, ['grant', 'list', '--host', 'db1'])).toHaveLength(1);
    ghOk(data, ['group', 'member', 'remove', 'ops', 'carol']);
    expect(gh(data, ['access', 'check', 'carol', 'db1', 'backup', '--action', 'exec']).stdout).toMatch(/^deny \(no_grant\)/);
  });

  it('grants: --until, expiry shown, remove', () => {
    const until = new Date(Date.now() + 86_400_000).toISOString();
    const g = ghJson<{ id: number; until: string; rights: string[] }>(data, ['grant', 'add', '--user', 'alice', '--all-hosts', '--login', 'ops', '--allow', 'shell,forward', '--until', until]);
    expect(g.until).toBe(until);
    expect(g.rights).toEqual(['shell', 'forward']);
    ghOk(data, ['grant', 'remove', String(g.id)]);
    expect(ghJson<{ id: number }[]>(data, ['grant', 'list']).map((x) => x.id)).not.toContain(g.id);
  });

  it('hosts: show, disable/enable, remove; the history stays', () => {
    expect(ghJson(data, ['host', 'show', 'web1'])).toMatchObject({ name: 'web1', address: '10.0.0.5', port: 22, enabled: true, hostKeyFingerprint: 'SHA256:gkJiNoKihxADefKnjwLd63okxi2AJ+WVSvxSLO3Vm08' });
    ghOk(data, ['host', 'disable', 'web1']);
    expect(gh(data, ['access', 'check', 'alice', 'web1', 'deploy']).stdout).toMatch(/^deny \(host_disabled\)/);
    ghOk(data, ['host', 'enable', 'web1']);
    ghOk(data, ['host', 'add', 'tmp1', '--address', '192.0.2.1']);
    expect(ghOk(data, ['host', 'show', 'tmp1'])).toContain('not pinned');
    ghOk(data, ['grant', 'add', '--user', 'alice', '--host', 'tmp1', '--login', 'x']);
    ghOk(data, ['host', 'remove', 'tmp1']);
    expect(ghJson<{ where: { name?: string } }[]>(data, ['grant', 'list']).some((g) => g.where.name === 'tmp1')).toBe(false);
    expect(ghJson<unknown[]>(data, ['audit', '--type', 'admin.host']).length).toBeGreaterThanOrEqual(5);
  });

  it('key show prints the bastion client key; sessions list is empty; verify passes', () => {
    const pub = ghOk(data, ['key', 'show']).trim();
    expect(pub).toBe(fs.readFileSync(path.join(data, 'client_ed25519_key.pub'), 'utf8').trim());
    expect(pub).toMatch(/^ssh-ed25519 /);
    expect(ghJson(data, ['sessions', 'list'])).toEqual([]);
    expect(ghOk(data, ['verify'])).toMatch(/audit log: intact/);
  });

  it('user remove takes keys, TOTP, memberships and grants along, keeps the audit trail', () => {
    ghOk(data, ['user', 'add', 'erin']);
    const erinKey = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'erin' }).public;
    ghOk(data, ['user', 'key', 'add', 'erin', '-'], { input: erinKey });
    expect(gh(data, ['user', 'key', 'add', 'erin', '-'], { input: erinKey }).stderr).toMatch(/already registered/);
    ghOk(data, ['grant', 'add', '--user', 'erin', '--host', 'web1', '--login', 'deploy']);
    ghOk(data, ['user', 'remove', 'erin']);
    expect(gh(data, ['user', 'show', 'erin']).code).toBe(1);
    expect(ghJson<{ who: { name: string } }[]>(data, ['grant', 'list']).some((g) => g.who.name === 'erin')).toBe(false);
    // The key is free again for someone else.
    ghOk(data, ['user', 'key', 'add', 'carol', '-'], { input: erinKey });
    expect(ghJson<{ type: string }[]>(data, ['audit', '--user', 'erin']).map((e) => e.type)).toEqual(['admin.user.add', 'admin.user.key.add', 'admin.grant.add', 'admin.user.remove']);
  });

  describe('bad input is refused with a clear error and changes nothing', () => {
    it('unknown names', () => {
      refused(data, ['user', 'show', 'nobody'], 1, /no user named "nobody"/);
      refused(data, ['user', 'key', 'add', 'nobody', keyFile], 1, /no user named "nobody"/);
      refused(data, ['user', 'disable', 'nobody'], 1, /no user named "nobody"/);
      refused(data, ['group', 'member', 'add', 'nogroup', 'alice'], 1, /no group named "nogroup"/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'nohost', '--login', 'x'], 1, /no host named "nohost"/);
      refused(data, ['grant', 'add', '--user', 'nobody', '--host', 'web1', '--login', 'x'], 1, /no user named "nobody"/);
      refused(data, ['grant', 'remove', '9999'], 1, /no grant #9999/);
      refused(data, ['access', 'check', 'alice', 'nohost', 'deploy'], 1, /no host named "nohost"/);
      refused(data, ['sessions', 'show', 'nope'], 1, /no session "nope"/);
    });

    it('duplicates', () => {
      refused(data, ['user', 'add', 'alice'], 1, /user "alice" already exists/);
      refused(data, ['group', 'add', 'ops'], 1, /group "ops" already exists/);
      refused(data, ['host', 'add', 'web1', '--address', '10.0.0.9'], 1, /host "web1" already exists/);
      refused(data, ['user', 'key', 'add', 'bob', keyFile], 1, /already belongs to another user/);
      refused(data, ['user', 'totp', 'enroll', 'alice'], 1, /already has TOTP enrolled/);
    }, 120_000);

    it('malformed or weak keys, all-or-nothing', () => {
      refused(data, ['user', 'key', 'add', 'bob', '-'], 1, /RSA key of 1024 bits is too weak/, fixtureKey('rsa1024'));
      refused(data, ['user', 'key', 'add', 'bob', '-'], 1, /DSA keys are refused/, fixtureKey('dsa'));
      refused(data, ['user', 'key', 'add', 'bob', '-'], 1, /line 2: RSA key of 1024/, fixtureKey('ecdsa256').replace('ecdsa256', 'bob') + fixtureKey('rsa1024'));
      refused(data, ['user', 'key', 'add', 'bob', '-'], 1, /not an SSH public key/, 'garbage\n');
      refused(data, ['user', 'key', 'add', 'bob', '/nonexistent.pub'], 1, /cannot read \/nonexistent.pub/);
      refused(data, ['host', 'add', 'web9', '--address', '10.0.0.9', '--host-key', 'ssh-ed25519 AAAAnope'], 1, /--host-key/);
    });

    it('bad fingerprint, bad TOTP secret, bad dates and durations', () => {
      refused(data, ['user', 'key', 'remove', 'alice', 'MD5:00:11'], 1, /not a SHA256 fingerprint/);
      refused(data, ['user', 'key', 'remove', 'alice', 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'], 1, /has no key/);
      refused(data, ['user', 'totp', 'enroll', 'bob', '--secret', 'tooshort'], 1, /too short/);
      refused(data, ['user', 'totp', 'enroll', 'bob', '--secret', '0000!!!!'], 1, /not base32/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'web1', '--login', 'x', '--until', 'tomorrow'], 1, /--until: "tomorrow" is not an ISO-8601 date/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'web1', '--login', 'x', '--until', '2020-01-01'], 1, /in the past/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'web1', '--login', 'x', '--for', 'ever'], 1, /--for: "ever" is not a duration/);
      refused(data, ['audit', '--since', 'yesterday'], 1, /--since/);
      refused(data, ['user', 'password', 'bob'], 1, /password too short/, 'short\n');
    });

    it('usage errors exit 2', () => {
      refused(data, ['user', 'add'], 2, /missing arguments/);
      refused(data, ['user', 'add', 'x', 'y'], 2, /unexpected argument "y"/);
      refused(data, ['user', 'add', 'zed', '--role', 'root'], 2, /unknown role "root"/);
      refused(data, ['user', 'add', 'zed', '--frobnicate'], 2, /Unknown option '--frobnicate'/);
      refused(data, ['frobnicate'], 2, /unknown command "frobnicate"/);
      refused(data, ['grant', 'add', '--user', 'alice', '--group', 'ops', '--host', 'web1', '--login', 'x'], 2, /exactly one of --user U or --group G/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'web1', '--all-hosts', '--login', 'x'], 2, /exactly one of --host/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'web1'], 2, /needs --login/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'web1', '--login', 'x', '--allow', 'shell,root'], 2, /unknown right "root"/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'web1', '--login', 'x', '--until', '2030-01-01', '--for', '1h'], 2, /not both/);
      refused(data, ['host', 'add', 'web9'], 2, /needs --address/);
      refused(data, ['host', 'add', 'web9', '--address', '10.0.0.9', '--port', '99999'], 2, /not a port number/);
      refused(data, ['grant', 'remove', 'abc'], 2, /not a grant id/);
      refused(data, ['access', 'check', 'alice', 'web1', 'deploy', '--action', 'dance'], 2, /unknown action/);
    });

    it('invalid names', () => {
      refused(data, ['user', 'add', 'Alice'], 1, /invalid user name "Alice"/);
      refused(data, ['user', 'add', '-x'], 2, /Unknown option/);
      refused(data, ['user', 'add', '../etc'], 1, /invalid user name/);
      refused(data, ['host', 'add', 'web 9', '--address', 'x'], 1, /invalid host name/);
      refused(data, ['host', 'add', 'web9', '--address', 'a b;rm'], 1, /not a host name or IP address/);
      refused(data, ['grant', 'add', '--user', 'alice', '--host', 'web1', '--login', 'bad login'], 1, /invalid login/);
    });
  });

  it('--help works on every command without touching a data dir', () => {
    const fresh = path.join(tempDir(), 'never-created');
    for (const args of [['--help'], ['user', 'add', '--help'], ['grant', 'add', '--help'], ['user']]) {
      const r = gh(fresh, args);
      // gh() appends --data: a group word alone lists its commands (exit 2), --help exits 0
      expect(r.code, args.join(' ')).toBe(args.length === 1 && args[0] === 'user' ? 2 : 0);
      expect(r.stdout + r.stderr).toMatch(/usage: gatehouse/);
    }
    expect(fs.existsSync(fresh)).toBe(false);
  });

  it('refuses a data dir readable by others, with the fix', () => {
    const dir = path.join(tempDir(), 'loose');
    ghOk(dir, ['user', 'list']);
    fs.chmodSync(dir, 0o755);
    const r = gh(dir, ['user', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`hint: restrict it with: chmod 700 ${dir}`);
  });

  it('a bad config file stops a command with exit 1 and names the key', () => {
    const cfg = path.join(tempDir(), 'bad.yaml');
    fs.writeFileSync(cfg, 'sessions:\n  idleTimeout: forever\n');
    const r = gh(data, ['user', 'list', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sessions.idleTimeout');
  });

  it('the audit chain stays intact across all of the above', () => {
    const v = JSON.parse(ghOk(data, ['verify', '--json']));
    expect(v.audit.ok).toBe(true);
    expect(v.ok).toBe(true);
    expect(v.audit.rows).toBeGreaterThan(30);
  });
});
