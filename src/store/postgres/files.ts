import type { Store } from '../types.js';
import { toFileRecord as toRecord, type FileRow as Row } from '../rows.js';
import type { Ctx } from './db.js';

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
