import { GENESIS_HASH, rowHash, type ChainRow, type ChainVerdict } from '../../audit/chain.js';
import type { Store } from '../types.js';
import { toAuditRecord as toRecord } from '../rows.js';
import { param, type Arg, type Ctx } from './db.js';

const COLUMNS = 'id, ts, type, actor, subject, data, prev_hash, hash';
/** Rows verify() reads per query: the chain is walked in pages, never loaded whole. */
const VERIFY_PAGE = 5000;

export function auditTable(ctx: Ctx): Store['audit'] {
  const { db } = ctx;
  return {
    async append(ev) {
      return ctx.appendAudit(ev, ctx.clock.now());
    },
    async list(f) {
      const where: string[] = [];
      const args: Arg[] = [];
      if (f.since !== undefined) where.push(`ts >= ${param(args, f.since)}`);
      if (f.type !== undefined) {
        const prefix = f.type.replace(/\.?\*$/, '');
        where.push(`(type = ${param(args, prefix)} OR type LIKE ${param(args, `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}.%`)} ESCAPE '\\')`);
      }
      if (f.user !== undefined) where.push(`(subject = ${param(args, f.user)} OR actor = $${args.length})`);
      if (f.session !== undefined) where.push(`session = ${param(args, f.session)}`);
      // Newest N, shown oldest first.
      const sql = `SELECT * FROM (SELECT ${COLUMNS} FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY id DESC LIMIT ${param(args, f.limit ?? 1000)}) AS x ORDER BY id`;
      return (await db.rows<ChainRow>(sql, args)).map(toRecord);
    },
    async count(type) {
      return (await db.one<{ n: number }>('SELECT count(*) AS n FROM audit_log WHERE type = $1', [type]))!.n;
    },
    async after(id, limit) {
      return (await db.rows<ChainRow>(`SELECT ${COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2`, [id, limit])).map(toRecord);
    },
    async verify(): Promise<ChainVerdict> {
      // The same walk as audit/chain.ts verifyChain, a page at a time.
      let prev = GENESIS_HASH;
      let lastId = 0;
      let n = 0;
      for (;;) {
        const page = await db.rows<ChainRow>(`SELECT ${COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2`, [lastId, VERIFY_PAGE]);
        for (const r of page) {
          n++;
          if (r.prev_hash !== prev) return { ok: false, rows: n, badId: r.id, problem: 'previous-hash link broken (a row before it was changed or removed)' };
          if (rowHash(prev, r) !== r.hash) return { ok: false, rows: n, badId: r.id, problem: 'row content does not match its hash (the row was changed)' };
          prev = r.hash;
          lastId = r.id;
        }
        if (page.length < VERIFY_PAGE) return { ok: true, rows: n, head: prev };
      }
    },
    async head() {
      const last = await db.one<{ id: number; hash: string }>('SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1');
      return last ? { count: last.id, hash: last.hash } : { count: 0, hash: GENESIS_HASH };
    },
    async get(id) {
      const row = await db.one<ChainRow>(`SELECT ${COLUMNS} FROM audit_log WHERE id = $1`, [id]);
      return row ? toRecord(row) : null;
    },
  };
}
