import { describe, type AuditDraft } from '../../audit/events.js';
import { isoTime } from '../../shared/clock.js';
import { usageError } from '../../shared/errors.js';
import { parseIsoTime } from '../../shared/units.js';
import { str, type Command } from '../command.js';
import { oneLine } from '../escape.js';

export const commands: Command[] = [
  {
    names: ['audit'], args: '[--since ISO] [--type T] [--user U] [--limit N]',
    summary: 'list audit events (--type admin.user matches admin.user.*)', json: true,
    options: { since: { type: 'string' }, type: { type: 'string' }, user: { type: 'string' }, limit: { type: 'string' } },
    positionals: { min: 0, max: 0 },
    async handler(ctx, values) {
      const sinceText = str(values, 'since');
      const limitText = str(values, 'limit');
      if (limitText !== undefined && !/^\d+$/.test(limitText)) throw usageError(`--limit: "${limitText}" is not a number`);
      const { store } = await ctx.open();
      const rows = await store.audit.list({
        since: sinceText === undefined ? undefined : parseIsoTime(sinceText, '--since'),
        type: str(values, 'type'), user: str(values, 'user'), limit: limitText === undefined ? 1000 : Number(limitText),
      });
      return {
        json: rows.map((r) => ({ id: r.id, time: isoTime(r.ts), type: r.type, actor: r.actor, user: r.subject, data: r.data, hash: r.hash })),
        text: rows.length === 0 ? 'no audit events match'
          : rows.map((r) => oneLine(`${isoTime(r.ts)}  #${r.id}  ${r.type.padEnd(24)} ${r.actor.padEnd(14)} ${describe({ type: r.type, actor: r.actor, data: r.data } as AuditDraft)}`)).join('\n'),
      };
    },
  },
];
