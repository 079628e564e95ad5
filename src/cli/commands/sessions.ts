import { isoTime } from '../../shared/clock.js';
import { notFound } from '../../shared/errors.js';
import { parseIsoTime } from '../../shared/units.js';
import type { SessionRecord } from '../../store/types.js';
import { str, table, type Command } from '../command.js';

function sessionJson(s: SessionRecord) {
  return {
    id: s.id, user: s.user, source: s.sourceAddr, host: s.host, login: s.login, mode: s.mode, grant: s.grantId,
    keyFingerprint: s.keyFingerprint, startedAt: isoTime(s.startedAt), endedAt: s.endedAt === null ? null : isoTime(s.endedAt),
    endReason: s.endReason, bytesUp: s.bytesUp, bytesDown: s.bytesDown, live: s.endedAt === null,
  };
}

export const commands: Command[] = [
  {
    names: ['sessions', 'list'], args: '[--live] [--user U] [--host H] [--since ISO]', summary: 'list sessions, newest first', json: true,
    options: { live: { type: 'boolean' }, user: { type: 'string' }, host: { type: 'string' }, since: { type: 'string' } },
    positionals: { min: 0, max: 0 },
    async handler(ctx, values) {
      const since = str(values, 'since');
      const { store } = await ctx.open();
      const rows = await store.sessions.list({
        live: values.live === true, user: str(values, 'user'), host: str(values, 'host'),
        since: since === undefined ? undefined : parseIsoTime(since, '--since'),
      });
      return {
        json: rows.map(sessionJson),
        text: rows.length === 0 ? 'no sessions match'
          : table(['ID', 'USER', 'TARGET', 'FROM', 'STARTED', 'ENDED'], rows.map((s) => [
            s.id, s.user, s.host ? `${s.login}@${s.host}` : '-', s.sourceAddr, isoTime(s.startedAt),
            s.endedAt === null ? 'live' : `${isoTime(s.endedAt)}${s.endReason ? ` (${s.endReason})` : ''}`,
          ])),
      };
    },
  },
  {
    names: ['sessions', 'show'], args: 'ID', summary: 'show one session and its channels', json: true, positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [id]) {
      const { store } = await ctx.open();
      const s = await store.sessions.get(id!);
      if (!s) throw notFound(`no session "${id}"`, 'list sessions with: gatehouse sessions list');
      const channels = await store.sessions.channels(s.id);
      const j = sessionJson(s);
      return {
        json: { ...j, channels: channels.map((c) => ({ ...c, startedAt: isoTime(c.startedAt), endedAt: c.endedAt === null ? null : isoTime(c.endedAt) })) },
        text: [
          `session:  ${s.id}`, `user:     ${s.user} from ${s.sourceAddr}`, `target:   ${s.host ? `${s.login}@${s.host}` : '-'} (${s.mode})`,
          `started:  ${j.startedAt}`, `ended:    ${j.endedAt ?? 'live'}${s.endReason ? ` (${s.endReason})` : ''}`,
          `bytes:    ${s.bytesUp} up, ${s.bytesDown} down`,
          ...channels.map((c) => `channel ${c.channel}: ${c.kind}${c.command ? ` ${JSON.stringify(c.command)}` : ''}${c.exitStatus !== null ? ` exit ${c.exitStatus}` : ''}${c.exitSignal ? ` signal ${c.exitSignal}` : ''}`),
        ].join('\n'),
      };
    },
  },
];
