import { whereText, type GrantWhere, type GrantWho, type Right } from '../../audit/events.js';
import { isoTime } from '../../shared/clock.js';
import { invalid, notFound, usageError } from '../../shared/errors.js';
import { checkLogin, checkName, parseRights } from '../../shared/names.js';
import { formatDuration, parseDuration, parseIsoTime } from '../../shared/units.js';
import type { GrantRecord } from '../../store/types.js';
import { str, table, type Command } from '../command.js';

/** Rights a grant gets when --allow is not given: everything but port forwarding, which is asked for explicitly. */
export const DEFAULT_RIGHTS: Right[] = ['shell', 'exec', 'sftp'];

function grantJson(g: GrantRecord) {
  return {
    id: g.id, who: g.who, where: g.where, logins: g.logins, rights: g.rights,
    until: g.until === null ? null : isoTime(g.until), reason: g.reason, createdBy: g.createdBy, createdAt: isoTime(g.createdAt),
    ...(g.source !== undefined ? { source: g.source } : {}),
  };
}

const whoText = (w: GrantWho) => (w.kind === 'user' ? `user ${w.name}` : `group ${w.name}`);

export const commands: Command[] = [
  {
    names: ['grant', 'add'],
    args: '(--user U | --group G) (--host H | --host-group HG | --all-hosts) --login L[,L…] [--allow shell,exec,sftp,forward] [--until ISO-8601 | --for 8h] [--reason TEXT]',
    summary: 'grant access', help: `Default rights: ${DEFAULT_RIGHTS.join(',')} (forward must be asked for).`,
    options: {
      user: { type: 'string' }, group: { type: 'string' }, host: { type: 'string' }, 'host-group': { type: 'string' },
      'all-hosts': { type: 'boolean' }, login: { type: 'string' }, allow: { type: 'string' }, until: { type: 'string' },
      for: { type: 'string' }, reason: { type: 'string' },
    },
    positionals: { min: 0, max: 0 },
    async handler(ctx, values) {
      const user = str(values, 'user');
      const group = str(values, 'group');
      if ((user === undefined) === (group === undefined)) throw usageError('give exactly one of --user U or --group G');
      const who: GrantWho = user !== undefined ? { kind: 'user', name: checkName('user', user) } : { kind: 'group', name: checkName('group', group!) };

      const host = str(values, 'host');
      const hostGroup = str(values, 'host-group');
      const all = values['all-hosts'] === true;
      if ([host !== undefined, hostGroup !== undefined, all].filter(Boolean).length !== 1) {
        throw usageError('give exactly one of --host H, --host-group HG or --all-hosts');
      }
      const where: GrantWhere = host !== undefined ? { kind: 'host', name: checkName('host', host) }
        : hostGroup !== undefined ? { kind: 'host-group', name: checkName('host group', hostGroup) } : { kind: 'all' };

      const loginText = str(values, 'login');
      if (loginText === undefined) throw usageError('grant add needs --login L[,L…]', 'the logins on the target, e.g. --login deploy');
      const logins = [...new Set(loginText.split(',').map((l) => checkLogin(l.trim())))];
      const allow = str(values, 'allow');
      const rights = allow === undefined ? DEFAULT_RIGHTS : parseRights(allow);

      const untilText = str(values, 'until');
      const forText = str(values, 'for');
      if (untilText !== undefined && forText !== undefined) throw usageError('give --until or --for, not both');
      const now = ctx.clock.now();
      let until: number | null = null;
      if (untilText !== undefined) {
        until = parseIsoTime(untilText, '--until');
        if (until <= now) throw invalid(`--until ${untilText} is in the past`, 'give a future date, or --for 8h');
      } else if (forText !== undefined) {
        const ms = parseDuration(forText);
        if (ms === null || ms <= 0) throw invalid(`--for: "${forText}" is not a duration`, 'e.g. --for 30m, --for 8h, --for 7d');
        until = now + ms;
      }

      const { store } = await ctx.open();
      const g = await store.grants.add({ who, where, logins, rights, until, reason: str(values, 'reason') ?? '' }, { actor: ctx.actor });
      let note = '';
      if (where.kind === 'host-group' && !(await store.hosts.list()).some((h) => h.groups.includes(where.name))) {
        note = `\nnote: no host is in host group ${where.name} yet`;
      }
      const untilNote = g.until === null ? '' : ` until ${isoTime(g.until)}${forText ? ` (${formatDuration(g.until - now)})` : ''}`;
      return {
        text: `added grant #${g.id}: ${whoText(g.who)} → ${whereText(g.where)} as ${g.logins.join(',')} [${g.rights.join(',')}]${untilNote}${note}`,
        json: grantJson(g),
      };
    },
  },
  {
    names: ['grant', 'list'], args: '[--user U] [--host H]', summary: 'list grants (--user includes grants to their groups; --host includes host groups and all-hosts)',
    json: true, options: { user: { type: 'string' }, host: { type: 'string' } }, positionals: { min: 0, max: 0 },
    async handler(ctx, values) {
      const { store } = await ctx.open();
      let grants = await store.grants.list();
      const userName = str(values, 'user');
      if (userName !== undefined) {
        const u = await store.users.get(userName);
        if (!u) throw notFound(`no user named "${userName}"`, 'list users with: gatehouse user list');
        grants = grants.filter((g) => (g.who.kind === 'user' ? g.who.name === u.name : u.groups.includes(g.who.name)));
      }
      const hostName = str(values, 'host');
      if (hostName !== undefined) {
        const h = await store.hosts.get(hostName);
        if (!h) throw notFound(`no host named "${hostName}"`, 'list hosts with: gatehouse host list');
        grants = grants.filter((g) => g.where.kind === 'all' || (g.where.kind === 'host' ? g.where.name === h.name : h.groups.includes(g.where.name)));
      }
      const now = ctx.clock.now();
      return {
        json: grants.map(grantJson),
        text: grants.length === 0 ? 'no grants'
          : table(['ID', 'WHO', 'WHERE', 'LOGINS', 'RIGHTS', 'UNTIL', 'REASON'], grants.map((g) => [
            `#${g.id}`, whoText(g.who), whereText(g.where), g.logins.join(','), g.rights.join(','),
            g.until === null ? '-' : `${isoTime(g.until)}${g.until <= now ? ' (expired)' : ''}`, g.reason || '-',
          ])),
      };
    },
  },
  {
    names: ['grant', 'remove'], args: 'ID', summary: 'remove a grant (ends the sessions it allowed)', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [idText]) {
      const id = Number(idText!.replace(/^#/, ''));
      if (!Number.isSafeInteger(id) || id <= 0) throw usageError(`"${idText}" is not a grant id`, 'ids are shown by: gatehouse grant list');
      const { store } = await ctx.open();
      await store.grants.remove(id, { actor: ctx.actor });
      return { text: `removed grant #${id}` };
    },
  },
];
