import { GENESIS_HASH, verifyChain, type ChainRow } from '../../audit/chain.js';
import type { Store } from '../types.js';
import { toAuditRecord as toRecord } from '../rows.js';
import type { Ctx } from './db.js';

export function auditTable(ctx: Ctx): Store['audit'] {
  const { db } = ctx;
  return {
    async append(ev) {
      return ctx.appendAudit(ev, ctx.clock.now());
    },
    async list(f) {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (f.since !== undefined) { where.push('ts >= ?'); args.push(f.since); }
      if (f.type !== undefined) {
        const prefix = f.type.replace(/\.?\*$/, '');
        where.push('(type = ? OR type LIKE ? ESCAPE \'\\\')');
        args.push(prefix, `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}.%`);
      }
      if (f.user !== undefined) { where.push('(subject = ? OR actor = ?)'); args.push(f.user, f.user); }
      if (f.session !== undefined) { where.push("json_extract(data, '$.session') = ?"); args.push(f.session); }
      // Newest N, shown oldest first.
      const sql = `SELECT * FROM (SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY id DESC LIMIT ?) ORDER BY id`;
      return db.prepare<(string | number)[], ChainRow>(sql).all(...args, f.limit ?? 1000).map(toRecord);
    },
    async count(type) {
      return db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM audit_log WHERE type = ?').get(type)!.n;
    },
    async after(id, limit) {
      return db.prepare<[number, number], ChainRow>('SELECT * FROM audit_log WHERE id > ? ORDER BY id LIMIT ?').all(id, limit).map(toRecord);
    },
    async verify() {
      return verifyChain(db.prepare<[], ChainRow>('SELECT * FROM audit_log ORDER BY id').iterate());
    },
    async head() {
      const last = db.prepare<[], { id: number; hash: string }>('SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1').get();
      return last ? { count: last.id, hash: last.hash } : { count: 0, hash: GENESIS_HASH };
    },
    async get(id) {
      const row = db.prepare<[number], ChainRow>('SELECT * FROM audit_log WHERE id = ?').get(id);
      return row ? toRecord(row) : null;
    },
  };
}
