import type { Store } from '../types.js';
import type { Ctx } from './db.js';

export function metaTable({ db }: Ctx): Store['meta'] {
  return {
    async get(key) {
      return db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(key)?.value ?? null;
    },
    async set(key, value) {
      db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
    },
  };
}
