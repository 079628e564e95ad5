import { checkName } from '../../shared/names.js';
import { table, type Command } from '../command.js';

export const commands: Command[] = [
  {
    names: ['group', 'add'], args: 'NAME', summary: 'add a user group', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      checkName('group', name!);
      const { store } = await ctx.open();
      await store.groups.add(name!, { actor: ctx.actor });
      return { text: `added group ${name}` };
    },
  },
  {
    names: ['group', 'remove'], args: 'NAME', summary: 'remove a group and the grants made to it', positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [name]) {
      const { store } = await ctx.open();
      await store.groups.remove(name!, { actor: ctx.actor });
      return { text: `removed group ${name}` };
    },
  },
  {
    names: ['group', 'list'], args: '', summary: 'list groups and their members', json: true, positionals: { min: 0, max: 0 },
    async handler(ctx) {
      const { store } = await ctx.open();
      const groups = await store.groups.list();
      return {
        json: groups.map((g) => ({ name: g.name, members: g.members })),
        text: groups.length === 0 ? 'no groups yet' : table(['GROUP', 'MEMBERS'], groups.map((g) => [g.name, g.members.join(',') || '-'])),
      };
    },
  },
  {
    names: ['group', 'member', 'add'], args: 'GROUP USER', summary: 'add a user to a group', positionals: { min: 2, max: 2 },
    async handler(ctx, _v, [group, user]) {
      const { store } = await ctx.open();
      await store.groups.addMember(group!, user!, { actor: ctx.actor });
      return { text: `added ${user} to group ${group}` };
    },
  },
  {
    names: ['group', 'member', 'remove'], args: 'GROUP USER', summary: 'remove a user from a group', positionals: { min: 2, max: 2 },
    async handler(ctx, _v, [group, user]) {
      const { store } = await ctx.open();
      await store.groups.removeMember(group!, user!, { actor: ctx.actor });
      return { text: `removed ${user} from group ${group}` };
    },
  },
];
