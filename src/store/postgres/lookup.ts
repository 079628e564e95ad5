import { notFound } from '../../shared/errors.js';
import type { Db } from './db.js';

/** Name → id lookups shared by the table modules; a missing name is a not-found error with a hint. */
export async function userId(db: Db, name: string): Promise<number> {
  const row = await db.one<{ id: number }>('SELECT id FROM users WHERE name = $1', [name]);
  if (!row) throw notFound(`no user named "${name}"`, 'list users with: gatehouse user list');
  return row.id;
}

export async function groupId(db: Db, name: string): Promise<number> {
  const row = await db.one<{ id: number }>('SELECT id FROM user_groups WHERE name = $1', [name]);
  if (!row) throw notFound(`no group named "${name}"`, 'list groups with: gatehouse group list');
  return row.id;
}

export async function hostId(db: Db, name: string): Promise<number> {
  const row = await db.one<{ id: number }>('SELECT id FROM hosts WHERE name = $1', [name]);
  if (!row) throw notFound(`no host named "${name}"`, 'list hosts with: gatehouse host list');
  return row.id;
}
