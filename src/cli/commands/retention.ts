import { sweepRetention } from '../../ops/retention.js';
import { createRecordingStorage } from '../../recorder/storage/index.js';
import { formatDuration } from '../../shared/units.js';
import { silentLogger } from '../../shared/logger.js';
import { usageError } from '../../shared/errors.js';
import { isoTime } from '../../shared/clock.js';
import { str, table, type Command } from '../command.js';

export const commands: Command[] = [
  {
    names: ['sessions', 'hold'], args: 'ID --reason TEXT', summary: 'put a session on legal hold: retention never deletes its recordings',
    options: { reason: { type: 'string' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [id]) {
      const reason = str(values, 'reason');
      if (reason === undefined) throw usageError('sessions hold needs --reason TEXT (e.g. the case it is kept for)');
      const { store } = await ctx.open();
      await store.retention.hold(id!, reason, { actor: ctx.actor });
      return { text: `session ${id} is on legal hold: its recordings are kept whatever recording.retention says` };
    },
  },
  {
    names: ['sessions', 'release'], args: 'ID', summary: 'lift the legal hold of a session (retention applies to it again)',
    positionals: { min: 1, max: 1 },
    async handler(ctx, _v, [id]) {
      const { store } = await ctx.open();
      await store.retention.release(id!, { actor: ctx.actor });
      return { text: `session ${id} is no longer on hold` };
    },
  },
  {
    names: ['sessions', 'holds'], args: '', summary: 'list the sessions on legal hold', json: true, positionals: { min: 0, max: 0 },
    async handler(ctx) {
      const { store } = await ctx.open();
      const rows = await store.retention.held();
      return {
        json: rows.map((r) => ({ ...r, at: isoTime(r.at) })),
        text: rows.length === 0 ? 'no session is on hold' : table(['SESSION', 'USER', 'HELD SINCE', 'BY', 'REASON'], rows.map((r) => [r.sessionId, r.user, isoTime(r.at), r.by, r.reason])),
      };
    },
  },
  {
    names: ['retention', 'sweep'], args: '', summary: 'delete now the recordings recording.retention has expired (the server does this daily)',
    positionals: { min: 0, max: 0 }, json: true,
    async handler(ctx) {
      const { store, config, dataDir } = await ctx.open();
      const retention = config.recording.retention;
      if (retention === null) return { json: { deleted: 0, retention: null }, text: 'recording.retention is "forever": nothing to delete' };
      const r = await sweepRetention({ store, root: createRecordingStorage(config, dataDir), clock: ctx.clock, log: silentLogger(), retention, actor: ctx.actor });
      return { json: { ...r, retention: formatDuration(retention) }, text: `deleted ${r.deleted} recording(s) older than ${formatDuration(retention)} (held sessions kept)` };
    },
  },
];
