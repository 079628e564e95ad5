import type { Role } from '../../audit/events.js';
import { checkPasswordStrength, hashPassword } from '../../auth/password.js';
import { isSecurityKeyType, normalizeFingerprint, parsePublicKeys } from '../../auth/sshkey.js';
import { seal } from '../../datadir/seal.js';
import { isoTime } from '../../shared/clock.js';
import { invalid, notFound, usageError } from '../../shared/errors.js';
import { checkName, checkRole } from '../../shared/names.js';
import type { UserRecord } from '../../store/types.js';
import { str, strs, table, type Command } from '../command.js';
import { readInput, readSecretLine } from '../io.js';
import { oneLine } from '../escape.js';

/** The AAD that binds a sealed TOTP secret to its user row. */
export const totpAad = (userId: number) => `totp:user:${userId}`;

function userJson(u: UserRecord) {
  return {
    name: u.name, roles: u.roles, disabled: u.disabled, disabledReason: u.disabledReason, totp: u.totpEnrolled,
    password: u.hasPassword, groups: u.groups, createdAt: isoTime(u.createdAt), requireSecurityKey: u.requireSecurityKey,
  };
}

async function mustGetUser(store: { users: { get(n: string): Promise<UserRecord | null> } }, name: string): Promise<UserRecord> {
  const u = await store.users.get(name);
  if (!u) throw notFound(`no user named "${name}"`, 'list users with: gatehouse user list');
  return u;
}

export const commands: Command[] = [
  {
    names: ['user', 'add'], args: 'NAME [--role operator|auditor|admin]... [--require-security-key]', summary: 'add a user (default role: operator)',
    help: '--require-security-key: only FIDO2 security keys (ed25519-sk, ecdsa-sk) may log in for this user; plain keys are refused.',
    options: { role: { type: 'string', multiple: true }, 'require-security-key': { type: 'boolean' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [name]) {
      checkName('user', name!);
      const roles = strs(values, 'role').map(checkRole);
      const uniq = [...new Set<Role>(roles.length ? roles : ['operator'])];
      const { store } = await ctx.open();
      let u = await store.users.add(name!, uniq, { actor: ctx.actor });
      if (values['require-security-key'] === true) {
        await store.users.setRequireSecurityKey(u.name, true, { actor: ctx.actor });
        u = (await store.users.get(u.name))!;
      }
      return {
        text: `added user ${u.name} (${u.roles.join(', ')})\nnext: gatehouse user key add ${u.name} KEY.pub, then gatehouse user totp enroll ${u.name}`,
        json: userJson(u),
      };
    },
  },
  {
    names: ['user', 'list'], args: '', summary: 'list users', json: true, positionals: { min: 0, max: 0 },
    async handler(ctx) {
      const { store } = await ctx.open();
      const users = await store.users.list();
      return {
        json: users.map(userJson),
        text: users.length === 0 ? 'no users yet: gatehouse user add NAME --role admin'
          : table(['NAME', 'ROLES', 'STATE', 'TOTP', 'GROUPS'], users.map((u) => [
            u.name, u.roles.join(',') || '-', u.disabled ? 'disabled' : 'enabled', u.totpEnrolled ? 'yes' : 'no', u.groups.join(',') || '-',
          ])),
      };
    },
  },
  {
    names: ['user', 'show'], args: 'NAME', summary: 'show one user, their keys and grants', json: true, positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      const u = await mustGetUser(store, name!);
      const keys = await store.keys.list(u.name);
      const grants = (await store.grants.list()).filter((g) => g.who.kind === 'user' ? g.who.name === u.name : u.groups.includes(g.who.name));
      const lines = [
        `name:      ${u.name}`,
        `roles:     ${u.roles.join(', ') || '-'}`,
        `state:     ${u.disabled ? `disabled${u.disabledReason ? ` (${u.disabledReason})` : ''}` : 'enabled'}`,
        `totp:      ${u.totpEnrolled ? 'enrolled' : 'not enrolled'}`,
        `password:  ${u.hasPassword ? 'set' : 'not set'}`,
        `sec. key:  ${u.requireSecurityKey ? 'required (plain keys are refused)' : 'optional'}`,
        `groups:    ${u.groups.join(', ') || '-'}`,
        `created:   ${isoTime(u.createdAt)}`,
        `keys:      ${keys.length === 0 ? '-' : ''}`,
        ...keys.map((k) => `  ${k.fingerprint} ${k.type} ${k.bits}${k.verifyRequired ? ' verify-required' : ''} ${k.comment}`.trimEnd()),
        `grants:    ${grants.length === 0 ? '-' : grants.map((g) => `#${g.id}`).join(', ')}`,
      ];
      return { text: lines.map(oneLine).join('\n'), json: { ...userJson(u), keys: keys.map((k) => ({ fingerprint: k.fingerprint, type: k.type, bits: k.bits, comment: k.comment })), grants: grants.map((g) => g.id) } };
    },
  },
  {
    names: ['user', 'disable'], args: 'NAME [--reason TEXT]', summary: 'disable a user (ends their sessions)',
    options: { reason: { type: 'string' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [name]) {
      const { store } = await ctx.open();
      await store.users.setDisabled(name!, true, str(values, 'reason') ?? '', { actor: ctx.actor });
      return { text: `disabled user ${name}` };
    },
  },
  {
    names: ['user', 'enable'], args: 'NAME', summary: 'enable a disabled user', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await store.users.setDisabled(name!, false, '', { actor: ctx.actor });
      return { text: `enabled user ${name}` };
    },
  },
  {
    names: ['user', 'remove'], args: 'NAME', summary: 'remove a user with their keys, TOTP and grants (history stays)', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await store.users.remove(name!, { actor: ctx.actor });
      return { text: `removed user ${name}` };
    },
  },
  {
    names: ['user', 'set'], args: 'NAME --require-security-key | --no-require-security-key', summary: "change a user's login requirements",
    help: '--require-security-key: only FIDO2 security keys (ed25519-sk, ecdsa-sk) may log in; sessions made with a plain key end.\n--no-require-security-key: any registered key may log in again.',
    options: { 'require-security-key': { type: 'boolean' }, 'no-require-security-key': { type: 'boolean' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [name]) {
      const on = values['require-security-key'] === true;
      const off = values['no-require-security-key'] === true;
      if (on === off) throw usageError('give exactly one of --require-security-key or --no-require-security-key', 'gatehouse user set NAME --require-security-key');
      const { store } = await ctx.open();
      await mustGetUser(store, name!);
      await store.users.setRequireSecurityKey(name!, on, { actor: ctx.actor });
      return { text: on ? `user ${name} must now log in with a security key` : `user ${name} may log in with any of their keys` };
    },
  },
  {
    names: ['user', 'role', 'add'], args: 'NAME ROLE', summary: 'give a user a role', positionals: { min: 2, max: 2 },
    async handler(ctx, _v, [name, role]) {
      const r = checkRole(role!);
      const { store } = await ctx.open();
      await store.users.addRole(name!, r, { actor: ctx.actor });
      return { text: `user ${name} now has the ${r} role` };
    },
  },
  {
    names: ['user', 'role', 'remove'], args: 'NAME ROLE', summary: 'take a role from a user', positionals: { min: 2, max: 2 },
    async handler(ctx, _v, [name, role]) {
      const r = checkRole(role!);
      const { store } = await ctx.open();
      await store.users.removeRole(name!, r, { actor: ctx.actor });
      return { text: `took the ${r} role from user ${name}` };
    },
  },
  {
    names: ['user', 'key', 'add'], args: 'NAME [FILE|-] [--verify-required]', summary: 'add public keys (authorized_keys lines; - or no FILE reads stdin)',
    help: [
      'Accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa of 2048 bits or more, and FIDO2 security keys',
      '(sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, made by ssh-keygen -t ed25519-sk; their application',
      'is in the key, "ssh:" unless chosen with -O application=ssh:…). A security key must be touched at every login.',
      '--verify-required (or a "verify-required" option before the key): its signatures must also carry user',
      'verification (PIN or biometric). All lines are added, or none.',
    ].join('\n'),
    options: { 'verify-required': { type: 'boolean' } }, positionals: { min: 1, max: 2 },
    async handler(ctx, values, [name, file]) {
      const keys = parsePublicKeys(await readInput(file ?? '-', ctx.stdin))
        .map((k) => (values['verify-required'] === true ? { ...k, verifyRequired: true } : k));
      const plain = keys.find((k) => k.verifyRequired && !isSecurityKeyType(k.type));
      if (plain) throw invalid(`${plain.fingerprint} (${plain.type}) is not a security key: verify-required applies to sk- keys only`);
      const { store } = await ctx.open();
      const added = await store.keys.add(name!, keys, { actor: ctx.actor });
      return {
        text: added.map((k) => oneLine(`added ${k.fingerprint} (${k.type} ${k.bits}${k.verifyRequired ? ' verify-required' : ''}${k.comment ? ` ${k.comment}` : ''}) to ${name}`)).join('\n'),
        json: added.map((k) => ({ fingerprint: k.fingerprint, type: k.type, bits: k.bits, comment: k.comment, verifyRequired: k.verifyRequired })),
      };
    },
  },
  {
    names: ['user', 'key', 'list'], args: 'NAME', summary: "list a user's keys", json: true, positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      const keys = await store.keys.list(name!);
      return {
        json: keys.map((k) => ({ fingerprint: k.fingerprint, type: k.type, bits: k.bits, comment: k.comment, addedAt: isoTime(k.createdAt), verifyRequired: k.verifyRequired, skCounter: k.skCounter })),
        text: keys.length === 0 ? `user ${name} has no keys` : table(['FINGERPRINT', 'TYPE', 'BITS', 'COMMENT'], keys.map((k) => [k.fingerprint, k.type, String(k.bits), k.comment])),
      };
    },
  },
  {
    names: ['user', 'key', 'remove'], args: 'NAME FINGERPRINT', summary: 'remove a key (ends sessions that used it)', positionals: { min: 2, max: 2 },
    async handler(ctx, _v, [name, fp]) {
      const fingerprint = normalizeFingerprint(fp!);
      const { store } = await ctx.open();
      await store.keys.remove(name!, fingerprint, { actor: ctx.actor });
      return { text: `removed key ${fingerprint} from ${name}` };
    },
  },
  {
    names: ['user', 'totp', 'enroll'], args: 'NAME [--secret BASE32]', summary: 'enrol TOTP: prints the otpauth:// URI (and a QR code on a terminal)',
    help: '--json prints {"secret": …, "uri": …}. --secret imports an existing base32 secret (at least 128 bits).',
    options: { secret: { type: 'string' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [name]) {
      const imported = str(values, 'secret');
      // otplib loads for enrolment only, not on every CLI run.
      const { newSecret, normalizeSecret, otpauthUri } = await import('../../auth/totp.js');
      const secret = imported === undefined ? newSecret() : normalizeSecret(imported);
      const { store, dataDir } = await ctx.open();
      await store.totp.enroll(name!, (uid) => seal(dataDir.masterKey, Buffer.from(secret, 'utf8'), totpAad(uid)), imported !== undefined, { actor: ctx.actor });
      const uri = otpauthUri(name!, secret);
      const lines = [`TOTP enrolled for ${name}. Add it to an authenticator app:`, `secret: ${secret}`, `uri:    ${uri}`];
      if (!ctx.json && ctx.stdout.isTTY) lines.push('', await (await import('qrcode')).default.toString(uri, { type: 'utf8' })); // loaded only here: every other CLI run starts faster
      return { json: { secret, uri }, text: lines.join('\n') };
    },
  },
  {
    names: ['user', 'totp', 'reset'], args: 'NAME', summary: "remove a user's TOTP (they cannot log in until enrolled again)", positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await store.totp.reset(name!, { actor: ctx.actor });
      return { text: `reset TOTP of ${name}; enrol again with: gatehouse user totp enroll ${name}` };
    },
  },
  {
    names: ['user', 'unlock'], args: 'NAME', summary: 'clear the lockout and failed-login count of a user', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await store.lockout.unlock(name!, { actor: ctx.actor });
      return { text: `cleared the lockout of ${name}` };
    },
  },
  {
    names: ['user', 'password'], args: 'NAME', summary: 'set the web UI password, read from stdin (no echo on a terminal)', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await mustGetUser(store, name!);
      const password = await readSecretLine(`New web password for ${name}: `, ctx.stdin, ctx.stderr);
      checkPasswordStrength(password);
      await store.users.setPassword(name!, await hashPassword(password), { actor: ctx.actor });
      return { text: `set the web password of ${name}` };
    },
  },
];
