import type { Store } from '../types.js';
import { toFileRecord as toRecord, type FileRow as Row } from '../rows.js';
import type { Ctx } from './db.js';

/** Longest path substring `sessions list --file` and the web list's file filter search for. */
export const MAX_FILE_FILTER = 4096;

export function filesTable(ctx: Ctx): Store['files'] {
  const { db, clock } = ctx;
  return {
    async add(f) {
      db.prepare('INSERT INTO transferred_files (session_id, channel, protocol, direction, path, size, sha256, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(f.sessionId, f.channel, f.protocol, f.direction, f.path, f.size, f.sha256, clock.now());
    },
    async list(sessionId) {
      return db.prepare<[string], Row>('SELECT * FROM transferred_files WHERE session_id = ? ORDER BY id').all(sessionId).map(toRecord);
    },
  };
}
