import { parsePublicKey } from '../../auth/sshkey.js';
import { isoTime } from '../../shared/clock.js';
import { invalid, notFound, usageError } from '../../shared/errors.js';
import { checkName } from '../../shared/names.js';
import type { HostRecord, TargetAuthMode } from '../../store/types.js';
import { fetchHostKey } from '../../proxy/hostkey.js';
import { GatehouseError } from '../../shared/errors.js';
import { str, strs, table, type Command } from '../command.js';
import { confirm } from '../io.js';
import { oneLine, writeText } from '../escape.js';

// A host name or an IP address (v4 or v6); no spaces, no shell or URL syntax.
const ADDRESS_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?|[0-9a-fA-F:.]+)$/;

function hostJson(h: HostRecord) {
  const key = h.hostKey ? parsePublicKey(h.hostKey) : null;
  return {
    name: h.name, address: h.address, port: h.port, groups: h.groups, enabled: h.enabled,
    hostKey: h.hostKey, hostKeyFingerprint: key?.fingerprint ?? null, createdAt: isoTime(h.createdAt), auth: h.auth ?? 'key',
  };
}

const AUTH_HELP = '--auth: how gatehouse logs in to the host. key (default): its static client key (`gatehouse key show`) in\nauthorized_keys. cert: a fresh key and a short-lived certificate per channel, signed by the user CA\n(`gatehouse ca show` is the line for the target\'s TrustedUserCAKeys); suggested for new hosts.';

function parseAuth(text: string | undefined): TargetAuthMode | undefined {
  if (text === undefined) return undefined;
  if (text !== 'key' && text !== 'cert') throw usageError(`--auth: "${text.slice(0, 20)}" is neither cert nor key`);
  return text;
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return 22;
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) throw usageError(`--port: "${text}" is not a port number (1-65535)`);
  return Number(text);
}

export const commands: Command[] = [
  {
    names: ['host', 'add'], args: 'NAME --address ADDR [--port 22] [--group HOSTGROUP]... [--host-key "TYPE BASE64"] [--auth key|cert]',
    summary: 'add a target host (pin its key with --host-key or `host trust`)',
    help: AUTH_HELP,
    options: { address: { type: 'string' }, port: { type: 'string' }, group: { type: 'string', multiple: true }, 'host-key': { type: 'string' }, auth: { type: 'string' } },
    positionals: { min: 1, max: 1 },
    async handler(ctx, values, [name]) {
      checkName('host', name!);
      const address = str(values, 'address');
      if (address === undefined) throw usageError('host add needs --address ADDR', 'e.g. gatehouse host add web1 --address 10.0.0.5');
      if (!ADDRESS_RE.test(address) || address.length > 253) throw invalid(`--address: "${address.slice(0, 80)}" is not a host name or IP address`);
      const port = parsePort(str(values, 'port'));
      const groups = [...new Set(strs(values, 'group').map((g) => checkName('host group', g)))];
      const keyText = str(values, 'host-key');
      const key = keyText === undefined ? null : parsePublicKey(keyText, '--host-key');
      const auth = parseAuth(str(values, 'auth'));
      const { store } = await ctx.open();
      const h = await store.hosts.add({
        name: name!, address, port, groups, hostKey: key?.publicKey ?? null, hostKeyFingerprint: key?.fingerprint ?? null, ...(auth ? { auth } : {}),
      }, { actor: ctx.actor });
      const pinned = key ? `, host key ${key.fingerprint} pinned` : `; pin its key before use: gatehouse host trust ${h.name}`;
      return { text: `added host ${h.name} (${h.address}:${h.port})${pinned}`, json: hostJson(h) };
    },
  },
  {
    names: ['host', 'trust'], args: 'NAME [--host-key "TYPE BASE64"] [--yes]', summary: 'connect to a host, show its key fingerprint and pin it (or pin a key given)',
    help: 'Compare the fingerprint with one obtained out of band (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host).\n--host-key pins the key given instead of fetching one. --yes pins without asking (required when stdin is not a terminal).\nSessions to the host made under the old key end at once.',
    options: { yes: { type: 'boolean' }, 'host-key': { type: 'string' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [name]) {
      const given = str(values, 'host-key');
      const givenKey = given === undefined ? null : parsePublicKey(given, '--host-key');
      const { store } = await ctx.open();
      const h = await store.hosts.get(name!);
      if (!h) throw notFound(`no host named "${name}"`, 'list hosts with: gatehouse host list');
      let presented;
      if (givenKey) {
        presented = { publicKey: givenKey.publicKey, fingerprint: givenKey.fingerprint };
      } else {
        try {
          presented = await fetchHostKey(h.address, h.port);
        } catch (err) {
          throw new GatehouseError('GH_RUNTIME', `cannot fetch the host key of ${h.name} (${h.address}:${h.port}): ${oneLine((err as Error).message)}`, {
            hint: 'check the address and port, and that sshd runs there',
          });
        }
      }
      const previous = h.hostKey ? parsePublicKey(h.hostKey).fingerprint : null;
      if (previous === presented.fingerprint) return { text: `host ${h.name} already has ${presented.fingerprint} pinned` };
      writeText(ctx.stderr, oneLine(`${h.name} (${h.address}:${h.port}) ${givenKey ? 'gets' : 'presents'} ${presented.publicKey.split(' ')[0]} ${presented.fingerprint}`) + '\n');
      if (previous) writeText(ctx.stderr, oneLine(`WARNING: the pinned key is ${previous}; pinning the new one replaces it`) + '\n');
      const yes = values.yes === true || (await confirm('Pin this key?', ctx.stdin, ctx.stderr));
      if (!yes) {
        throw new GatehouseError('GH_INVALID', 'host key not pinned', {
          hint: `compare the fingerprint out of band, then run: gatehouse host trust ${h.name} --yes`,
        });
      }
      await store.hosts.pinKey(h.name, presented.publicKey, presented.fingerprint, previous, { actor: ctx.actor });
      return { text: `pinned ${presented.fingerprint} for host ${h.name}`, json: { host: h.name, fingerprint: presented.fingerprint, previous } };
    },
  },
  {
    names: ['host', 'set'], args: 'NAME --auth key|cert', summary: 'change how gatehouse logs in to a host (from its next connection on)',
    help: AUTH_HELP, options: { auth: { type: 'string' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [name]) {
      const auth = parseAuth(str(values, 'auth'));
      if (auth === undefined) throw usageError('host set needs --auth key|cert', `e.g. gatehouse host set ${name} --auth cert`);
      const { store } = await ctx.open();
      await store.hosts.setAuth(name!, auth, { actor: ctx.actor });
      return {
        text: auth === 'cert' ? `host ${name} now gets a certificate per connection (its sshd must trust: gatehouse ca show)` : `host ${name} now gets the static client key (gatehouse key show)`,
        json: { host: name, auth },
      };
    },
  },
  {
    names: ['host', 'list'], args: '', summary: 'list hosts', json: true, positionals: { min: 0, max: 0 },
    async handler(ctx) {
      const { store } = await ctx.open();
      const hosts = await store.hosts.list();
      return {
        json: hosts.map(hostJson),
        text: hosts.length === 0 ? 'no hosts yet: gatehouse host add NAME --address ADDR'
          : table(['NAME', 'ADDRESS', 'STATE', 'GROUPS', 'HOST KEY'], hosts.map((h) => [
            h.name, `${h.address}:${h.port}`, h.enabled ? 'enabled' : 'disabled', h.groups.join(',') || '-',
            h.hostKey ? parsePublicKey(h.hostKey).fingerprint : 'not pinned',
          ])),
      };
    },
  },
  {
    names: ['host', 'show'], args: 'NAME', summary: 'show one host', json: true, positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      const h = await store.hosts.get(name!);
      if (!h) throw notFound(`no host named "${name}"`, 'list hosts with: gatehouse host list');
      const j = hostJson(h);
      return {
        json: j,
        text: [
          `name:      ${h.name}`, `address:   ${h.address}:${h.port}`, `state:     ${h.enabled ? 'enabled' : 'disabled'}`,
          `groups:    ${h.groups.join(', ') || '-'}`, `host key:  ${j.hostKeyFingerprint ?? `not pinned (gatehouse host trust ${h.name})`}`,
          `auth:      ${j.auth === 'cert' ? 'cert (a short-lived certificate per connection)' : 'key (the static client key)'}`,
          `created:   ${j.createdAt}`,
        ].map(oneLine).join('\n'),
      };
    },
  },
  {
    names: ['host', 'disable'], args: 'NAME', summary: 'disable a host (ends sessions to it)', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await store.hosts.setEnabled(name!, false, { actor: ctx.actor });
      return { text: `disabled host ${name}` };
    },
  },
  {
    names: ['host', 'enable'], args: 'NAME', summary: 'enable a disabled host', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await store.hosts.setEnabled(name!, true, { actor: ctx.actor });
      return { text: `enabled host ${name}` };
    },
  },
  {
    names: ['host', 'remove'], args: 'NAME', summary: 'remove a host and the grants to it (history stays)', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await store.hosts.remove(name!, { actor: ctx.actor });
      return { text: `removed host ${name}` };
    },
  },
];
