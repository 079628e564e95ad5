import { RIGHTS } from '../../audit/events.js';
import { authorize, type Action } from '../../auth/policy.js';
import { notFound, usageError } from '../../shared/errors.js';
import { str, type Command } from '../command.js';

export const commands: Command[] = [
  {
    names: ['access', 'check'], args: 'USER HOST LOGIN [--action shell|exec|sftp|sftp-read|forward]',
    summary: 'explain whether USER may reach LOGIN@HOST and which grant decides (exit 0 allow, 1 deny)',
    json: true, options: { action: { type: 'string' } }, positionals: { min: 3, max: 3 },
    async handler(ctx, values, [userName, hostName, login]) {
      const action = (str(values, 'action') ?? 'shell') as Action;
      if (!(RIGHTS as readonly string[]).includes(action)) throw usageError(`unknown action "${action}"`, `actions: ${RIGHTS.join(', ')}`);
      const { store } = await ctx.open();
      const user = await store.users.get(userName!);
      if (!user) throw notFound(`no user named "${userName}"`, 'list users with: gatehouse user list');
      const host = await store.hosts.get(hostName!);
      if (!host) throw notFound(`no host named "${hostName}"`, 'list hosts with: gatehouse host list');
      const d = authorize({ user, host, login: login!, action }, await store.grants.list(), ctx.clock.now());
      const head = d.allow
        ? `allow: ${user.name} may ${action} on ${host.name} as ${login} (grant #${d.grant.grantId})`
        : `deny (${d.reason}): ${d.message}`;
      return {
        exitCode: d.allow ? 0 : 1,
        text: [head, ...d.explanation.map((l) => `  ${l}`)].join('\n'),
        json: d.allow
          ? { allow: true, grant: d.grant.grantId, explanation: d.explanation }
          : { allow: false, reason: d.reason, message: d.message, explanation: d.explanation },
      };
    },
  },
];
