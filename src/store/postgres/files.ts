import type { FileRecord, Store } from '../types.js';
import type { Ctx } from './db.js';

interface Row {
  id: number; session_id: string; channel: number; protocol: string; direction: string; path: string; size: number; sha256: string; at: number;
}

const toRecord = (r: Row): FileRecord => ({
  sessionId: r.session_id, channel: r.channel, protocol: r.protocol, direction: r.direction, path: r.path, size: r.size, sha256: r.sha256, at: r.at,
});

export function filesTable(ctx: Ctx): Store['files'] {
  const { db, clock } = ctx;
  return {
    async add(f) {
      await db.run('INSERT INTO transferred_files (session_id, channel, protocol, direction, path, size, sha256, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
        [f.sessionId, f.channel, f.protocol, f.direction, f.path, f.size, f.sha256, clock.now()]);
    },
    async list(sessionId) {
      return (await db.rows<Row>('SELECT * FROM transferred_files WHERE session_id = $1 ORDER BY id', [sessionId])).map(toRecord);
    },
  };
}
