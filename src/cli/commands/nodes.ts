import { isoTime } from '../../shared/clock.js';
import { table, type Command } from '../command.js';

/** The nodes (servers, and the workers of `serve --workers N`) registered in the store, and whether each is alive. */
export const commands: Command[] = [
  {
    names: ['nodes'], args: '', summary: 'the servers and workers on this store, with their heartbeat and state', json: true,
    help: 'A node is "live" while its heartbeat is younger than node.deadAfter; a silent one is "dead" until a surviving node reaps it (closes its sessions as interrupted).',
    positionals: { min: 0, max: 0 },
    async handler(ctx) {
      const { store, config } = await ctx.open();
      // The clock heartbeats are stamped with (PostgreSQL's own), not this machine's.
      const now = await store.nodes.now();
      const rows = (await store.nodes.list()).map((n) => ({
        name: n.name, pid: n.pid, host: n.host, startedAt: isoTime(n.startedAt), heartbeatAt: isoTime(n.heartbeatAt), addresses: n.addresses,
        state: n.stoppedAt !== null ? 'stopped' : n.reapedAt !== null ? `reaped by ${n.reapedBy ?? '?'}` : now - n.heartbeatAt < config.node.deadAfter ? 'live' : 'dead',
      }));
      return {
        json: rows,
        text: rows.length === 0 ? 'no node has run on this store yet'
          : table(['NAME', 'STATE', 'PID', 'HOST', 'STARTED', 'LAST HEARTBEAT', 'LISTENS'], rows.map((r) => [r.name, r.state, String(r.pid), r.host, r.startedAt, r.heartbeatAt, r.addresses.join(', ') || '-'])),
      };
    },
  },
];
