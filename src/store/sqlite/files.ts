import type { FileRecord, Store } from '../types.js';
import type { Ctx } from './db.js';

interface Row {
  id: number; session_id: string; channel: number; protocol: string; direction: string; path: string; size: number; sha256: string; at: number;
}

const toRecord = (r: Row): FileRecord => ({
  sessionId: r.session_id, channel: r.channel, protocol: r.protocol, direction: r.direction, path: r.path, size: r.size, sha256: r.sha256, at: r.at,
});

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
