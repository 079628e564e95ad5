import { knownHostsFor } from '../../proxy/targetkeys.js';
import { notFound } from '../../shared/errors.js';
import type { Command } from '../command.js';

export const commands: Command[] = [
  {
    names: ['known-hosts'], args: '[USER]',
    summary: 'known_hosts lines for `ssh -J` (the host keys gatehouse presents per target); with USER, only the hosts they may reach',
    help: 'Operators can also run: ssh -p 2222 alice@bastion known-hosts',
    json: true, positionals: { min: 0, max: 1 },
    async handler(ctx, _v, [user]) {
      const { store, dataDir } = await ctx.open();
      if (user !== undefined && !(await store.users.get(user))) throw notFound(`no user named "${user}"`, 'list users with: gatehouse user list');
      const lines = await knownHostsFor(store, { dir: dataDir.paths.targetKeys, masterKey: dataDir.masterKey }, user ?? null, ctx.clock.now());
      return { text: lines.join('\n'), json: lines };
    },
  },
];
