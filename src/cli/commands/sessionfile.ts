import fs from 'node:fs';
import { draft } from '../../audit/events.js';
import { readFileContent } from '../../recorder/filecontent.js';
import { createRecordingStorage } from '../../recorder/storage/index.js';
import { GatehouseError, notFound, usageError } from '../../shared/errors.js';
import { str, type Command } from '../command.js';

/**
 * `gatehouse sessions file ID N --out FILE`: the stored content (recording.fileContent) of the Nth
 * file `sessions show ID` lists, re-checked against its marker in the intact recording before it is
 * written; the download is audited (`file.downloaded`).
 */
export const commands: Command[] = [
  {
    names: ['sessions', 'file'], args: 'ID N --out FILE', summary: 'write the stored content of a session\'s Nth transferred file (as sessions show lists them) to FILE',
    help: 'Needs recording.fileContent.maxBytes > 0 when the file moved; the content is checked against the recordings chain first.',
    options: { out: { type: 'string' } }, positionals: { min: 2, max: 2 },
    async handler(ctx, values, [id, nth]) {
      const out = str(values, 'out');
      if (out === undefined) throw usageError('sessions file needs --out FILE');
      if (!/^[1-9][0-9]{0,8}$/.test(nth!)) throw usageError(`N: "${nth}" is not a file number (1, 2, …)`);
      const { store, dataDir, config } = await ctx.open();
      const s = await store.sessions.get(id!);
      if (!s) throw notFound(`no session "${id}"`, 'list sessions with: gatehouse sessions list');
      const files = await store.files.list(s.id);
      const f = files[Number(nth) - 1];
      if (!f) throw notFound(`session ${s.id} has ${files.length} file(s), no file ${nth}`);
      const got = await readFileContent(createRecordingStorage(config, dataDir), await store.recordings.list(s.id), f);
      if ('error' in got) throw new GatehouseError('GH_NOT_FOUND', `file ${nth} of session ${s.id}: ${got.error}`);
      fs.writeFileSync(out, got.content, { mode: 0o600, flag: 'wx' });
      await store.audit.append(draft('file.downloaded', ctx.actor, { session: s.id, sessionUser: s.user, channel: f.channel, path: f.path, sha256: f.sha256, size: got.content.length, how: 'cli' }));
      return { text: `wrote ${got.content.length} B (sha256 ${got.marker.sha256}) of ${f.direction} ${JSON.stringify(f.path)} to ${out}` };
    },
  },
];
