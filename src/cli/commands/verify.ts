import type { Command } from '../command.js';

export const commands: Command[] = [
  {
    names: ['verify'], args: '', summary: 'check the audit log hash chain (exit 1 when it is broken)', json: true,
    positionals: { min: 0, max: 0 },
    async handler(ctx) {
      const { store } = await ctx.open();
      const v = await store.audit.verify();
      return v.ok
        ? { exitCode: 0, json: { audit: { ok: true, rows: v.rows, head: v.head } }, text: `audit log: intact (${v.rows} events, head ${v.head.slice(0, 16)}…)` }
        : { exitCode: 1, json: { audit: { ok: false, rows: v.rows, badId: v.badId, problem: v.problem } }, text: `audit log: BROKEN at event #${v.badId}: ${v.problem}` };
    },
  },
];
