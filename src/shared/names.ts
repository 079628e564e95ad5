import { ROLES, RIGHTS, type Right, type Role } from '../audit/events.js';
import { invalid, usageError } from './errors.js';

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
// POSIX portable user names, as sshd accepts them for logins on targets.
const LOGIN_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;

/** User, group and host names: one format everywhere, so they are safe in paths, URLs and logs. */
export function checkName(kind: 'user' | 'group' | 'host' | 'host group', name: string): string {
  if (!NAME_RE.test(name)) {
    throw invalid(`invalid ${kind} name "${name.slice(0, 80)}"`, 'use 1-64 characters: lower-case letters, digits, ".", "_" or "-", starting with a letter or digit');
  }
  return name;
}

export function checkLogin(login: string): string {
  if (!LOGIN_RE.test(login)) throw invalid(`invalid login "${login.slice(0, 80)}"`, 'a login is a user name on the target, e.g. deploy or root');
  return login;
}

export function checkRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) throw usageError(`unknown role "${role}"`, `roles: ${ROLES.join(', ')}`);
  return role as Role;
}

export function parseRights(text: string): Right[] {
  const rights = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (rights.length === 0) throw usageError('--allow needs at least one right', `rights: ${RIGHTS.join(', ')}`);
  for (const r of rights) {
    if (!(RIGHTS as readonly string[]).includes(r)) throw usageError(`unknown right "${r}"`, `rights: ${RIGHTS.join(', ')}`);
  }
  return [...new Set(rights)] as Right[];
}
