import type { Store } from '../types.js';
import type { Ctx } from './db.js';

export function metaTable({ db }: Ctx): Store['meta'] {
  return {
    async get(key) {
      return (await db.one<{ value: string }>('SELECT value FROM meta WHERE key = $1', [key]))?.value ?? null;
    },
    async set(key, value) {
      await db.run('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
    },
  };
}
