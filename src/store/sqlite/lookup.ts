import { notFound } from '../../shared/errors.js';
import type { DB } from './db.js';

/** Name → id lookups shared by the table modules; a missing name is a not-found error with a hint. */
export function userId(db: DB, name: string): number {
  const row = db.prepare<[string], { id: number }>('SELECT id FROM users WHERE name = ?').get(name);
  if (!row) throw notFound(`no user named "${name}"`, 'list users with: gatehouse user list');
  return row.id;
}

export function groupId(db: DB, name: string): number {
  const row = db.prepare<[string], { id: number }>('SELECT id FROM user_groups WHERE name = ?').get(name);
  if (!row) throw notFound(`no group named "${name}"`, 'list groups with: gatehouse group list');
  return row.id;
}

export function hostId(db: DB, name: string): number {
  const row = db.prepare<[string], { id: number }>('SELECT id FROM hosts WHERE name = ?').get(name);
  if (!row) throw notFound(`no host named "${name}"`, 'list hosts with: gatehouse host list');
  return row.id;
}
