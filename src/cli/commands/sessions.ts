import fs from 'node:fs';
import path from 'node:path';
import { draft } from '../../audit/events.js';
import { createRecordingStorage } from '../../recorder/storage/index.js';
import { exportManifest, fileJson, sessionJson } from '../../recorder/manifest.js';
import { isoTime } from '../../shared/clock.js';
import { GatehouseError, notFound, usageError } from '../../shared/errors.js';
import { MIN_SEARCH_CHARS, sessionStatus, type SessionStatus, type Store } from '../../store/types.js';
import { parseIsoTime } from '../../shared/units.js';
import { str, table, type Command } from '../command.js';
import { oneLine } from '../escape.js';

const STATUSES: readonly SessionStatus[] = ['live', 'ended', 'terminated', 'interrupted'];
const SEARCH_LIMIT = 50;

function whole(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^[0-9]{1,9}$/.test(v)) throw usageError(`${name}: "${v}" is not a whole number`);
  return Number(v);
}

async function mustGetSession(store: Store, id: string) {
  const s = await store.sessions.get(id);
  if (!s) throw notFound(`no session "${id}"`, 'list sessions with: gatehouse sessions list');
  return s;
}

export const commands: Command[] = [
  {
    names: ['sessions', 'list'], args: '[--live] [--user U] [--host H] [--since ISO] [--file PATH]', summary: 'list sessions, newest first', json: true,
    help: '--file PATH: only sessions that moved a file (sftp, scp) whose path contains PATH (a literal substring).',
    options: { live: { type: 'boolean' }, user: { type: 'string' }, host: { type: 'string' }, since: { type: 'string' }, file: { type: 'string' } },
    positionals: { min: 0, max: 0 },
    async handler(ctx, values) {
      const since = str(values, 'since');
      const { store } = await ctx.open();
      const file = str(values, 'file');
      if (file !== undefined && file.length === 0) throw usageError('--file: give part of a path');
      const rows = await store.sessions.list({
        live: values.live === true, user: str(values, 'user'), host: str(values, 'host'),
        since: since === undefined ? undefined : parseIsoTime(since, '--since'),
        ...(file !== undefined ? { file } : {}),
      });
      return {
        // The node that runs (ran) each session: with several nodes or workers, where a kill is carried out.
        json: rows.map((s) => ({ ...sessionJson(s), node: s.node })),
        text: rows.length === 0 ? 'no sessions match'
          : table(['ID', 'USER', 'TARGET', 'FROM', 'STARTED', 'ENDED', 'NODE'], rows.map((s) => [
            s.id, s.user, s.host ? `${s.login}@${s.host}` : '-', s.sourceAddr, isoTime(s.startedAt),
            s.endedAt === null ? 'live' : `${isoTime(s.endedAt)}${s.endReason ? ` (${s.endReason})` : ''}`, s.node ?? '-',
          ])),
      };
    },
  },
  {
    names: ['sessions', 'search'], args: 'TEXT [--user U] [--host H] [--since ISO] [--until ISO] [--status S] [--limit N] [--offset N]',
    summary: 'sessions whose output contains TEXT (a literal substring), newest first, with the count', json: true,
    help: `The same query as the web UI's sessions page: every match is reachable with --offset, newest first in the
order sessions opened. The count is exact, or "at least N" when a common text matches more than counting
quickly allows (the JSON says exact: false).
TEXT needs at least ${MIN_SEARCH_CHARS} characters. --status is one of ${STATUSES.join(', ')}. --limit defaults to ${SEARCH_LIMIT}.
Each row names where the text first appears: CHANNEL@SECONDS (gatehouse sessions play ID --channel CHANNEL).`,
    options: {
      user: { type: 'string' }, host: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' },
      status: { type: 'string' }, limit: { type: 'string' }, offset: { type: 'string' },
    },
    positionals: { min: 1, max: 1 },
    async handler(ctx, values, [raw]) {
      const text = raw!.trim();
      if ([...text].length < MIN_SEARCH_CHARS) throw usageError(`search text needs at least ${MIN_SEARCH_CHARS} characters`);
      const status = str(values, 'status');
      if (status !== undefined && !STATUSES.includes(status as SessionStatus)) throw usageError(`--status: "${status}" is not one of ${STATUSES.join(', ')}`);
      const since = str(values, 'since');
      const until = str(values, 'until');
      const limit = whole(str(values, 'limit'), '--limit', SEARCH_LIMIT);
      if (limit === 0) throw usageError('--limit: at least 1');
      const offset = whole(str(values, 'offset'), '--offset', 0);
      const { store } = await ctx.open();
      const r = await store.sessions.query({
        text, user: str(values, 'user'), host: str(values, 'host'), status: status as SessionStatus | undefined,
        since: since === undefined ? undefined : parseIsoTime(since, '--since'),
        until: until === undefined ? undefined : parseIsoTime(until, '--until'),
        limit, offset,
      });
      // A count that would have been slow to finish is a lower bound: "at least".
      const total = `${r.exact ? '' : 'at least '}${r.total}`;
      const shown = r.items.length === 0 ? '' : `${offset + 1}-${offset + r.items.length} of `;
      const next = offset + r.items.length < r.total || (!r.exact && r.items.length === limit);
      const more = next ? ` (next: --offset ${offset + r.items.length})` : '';
      return {
        json: { total: r.total, exact: r.exact, offset, sessions: r.items.map((i) => ({ ...sessionJson(i.session), status: sessionStatus(i.session), hit: i.hit })) },
        text: [
          ...(r.items.length === 0 ? [] : [table(['ID', 'USER', 'TARGET', 'STARTED', 'STATUS', 'HIT', 'LINE'], r.items.map(({ session: s, hit }) => [
            s.id, s.user, s.host ? `${s.login}@${s.host}` : '-', isoTime(s.startedAt), sessionStatus(s), hit ? `${hit.channel}@${hit.t}` : '-',
            (hit?.line ?? '').slice(0, 80),
          ]))]),
          `${shown}${total} session(s)${more}`,
        ].join('\n'),
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
      const recordings = await store.recordings.list(s.id);
      const files = await store.files.list(s.id);
      const j = sessionJson(s);
      return {
        json: {
          ...j,
          channels: channels.map((c) => ({ ...c, startedAt: isoTime(c.startedAt), endedAt: c.endedAt === null ? null : isoTime(c.endedAt) })),
          recordings: recordings.map((r) => ({ channel: r.channel, file: r.path, kind: r.kind, state: r.state, size: r.size, sha256: r.sha256, truncatedAtLimit: r.truncated })),
          files: files.map(fileJson),
        },
        text: [
          `session:  ${s.id}`, `user:     ${s.user} from ${s.sourceAddr}`, `target:   ${s.host ? `${s.login}@${s.host}` : '-'} (${s.mode})`,
          `started:  ${j.startedAt}`, `ended:    ${j.endedAt ?? 'live'}${s.endReason ? ` (${s.endReason})` : ''}`,
          `bytes:    ${s.bytesUp} up, ${s.bytesDown} down`,
          ...channels.map((c) => `channel ${c.channel}: ${c.kind} as ${c.login}@${c.host}${c.command ? ` ${JSON.stringify(c.command)}` : ''}${c.exitStatus !== null ? ` exit ${c.exitStatus}` : ''}${c.exitSignal ? ` signal ${c.exitSignal}` : ''}`),
          ...recordings.map((r) => `recording ${r.channel}: ${r.path} (${r.state}${r.size !== null ? `, ${r.size} B, sha256 ${r.sha256}` : ''})`),
          ...files.map((f) => `file ${f.channel}: ${f.direction} ${JSON.stringify(f.path)} ${f.size} B sha256 ${f.sha256} (${f.protocol}, ${isoTime(f.at)})`),
        ].map(oneLine).join('\n'),
      };
    },
  },
  {
    names: ['sessions', 'play'], args: 'ID [--speed N] [--channel C]', summary: 'replay a session in this terminal (pauses over 2 s are shortened)',
    options: { speed: { type: 'string' }, channel: { type: 'string' }, markers: { type: 'boolean' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [id]) {
      const speed = Number(str(values, 'speed') ?? '1');
      if (!(speed > 0)) throw usageError(`--speed: "${str(values, 'speed')}" is not a positive number`);
      const { store, dataDir, config } = await ctx.open();
      const storage = createRecordingStorage(config, dataDir);
      const s = await mustGetSession(store, id!);
      const channel = str(values, 'channel');
      const recs = (await store.recordings.list(s.id)).filter((r) => channel === undefined || String(r.channel) === channel);
      if (recs.length === 0) throw notFound(`session ${s.id} has no recording${channel === undefined ? '' : ` for channel ${channel}`}`);
      await store.audit.append(draft('recording.viewed', ctx.actor, { session: s.id, sessionUser: s.user, how: 'play' }));
      for (const r of recs.sort((a, b) => a.channel - b.channel)) {
        const data = await storage.read(r.path);
        if (data === null) throw new GatehouseError('GH_NOT_FOUND', `recording file ${r.path} is missing`, { hint: 'gatehouse verify reports what happened to it' });
        const { replayCastData } = await import('../../recorder/replay.js'); // loaded for this command only: every other CLI run starts faster without it
        await replayCastData(data, { speed, idleCap: 2, write: (t) => ctx.stdout.write(t), showMarkers: values.markers === true });
      }
      return {};
    },
  },
  {
    names: ['sessions', 'export'], args: 'ID --out DIR', summary: 'copy a session\'s recordings and a manifest (metadata, hashes, integrity) to DIR',
    options: { out: { type: 'string' } }, positionals: { min: 1, max: 1 }, json: true,
    async handler(ctx, values, [id]) {
      const out = str(values, 'out');
      if (out === undefined) throw usageError('sessions export needs --out DIR');
      const { store, dataDir, config } = await ctx.open();
      const s = await mustGetSession(store, id!);
      const { manifest, files } = await exportManifest(store, { recordings: createRecordingStorage(config, dataDir), hostKey: dataDir.hostKey, retention: config.recording.retention }, s, ctx.actor, ctx.clock.now());
      fs.mkdirSync(out, { recursive: true, mode: 0o700 });
      for (const f of files) {
        fs.writeFileSync(path.join(out, f.name), await f.read(), { mode: 0o600, flag: 'wx' });
      }
      fs.writeFileSync(path.join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
      await store.audit.append(draft('recording.viewed', ctx.actor, { session: s.id, sessionUser: s.user, how: 'export' }));
      return { json: manifest, text: `exported ${files.length} recording(s) and manifest.json to ${out}` };
    },
  },
  {
    names: ['sessions', 'kill'], args: 'ID [--reason TEXT]', summary: 'end a live session (the server ends it within a second)',
    options: { reason: { type: 'string' } }, positionals: { min: 1, max: 1 },
    async handler(ctx, values, [id]) {
      const { store } = await ctx.open();
      await store.kills.request(id!, str(values, 'reason') ?? '', { actor: ctx.actor });
      return { text: `asked the server to end session ${id}` };
    },
  },
];
