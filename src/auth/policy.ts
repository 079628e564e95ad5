import { whereText, type Right } from '../audit/events.js';
import { isoTime } from '../shared/clock.js';
import type { GrantRecord, HostRecord, UserRecord } from '../store/types.js';

/**
 * The one place that decides access. Default deny: a request passes only when an unexpired grant
 * names the user (directly or through a group), the host (directly, by host group, or all hosts),
 * the login and the right. Disabled users and hosts never pass, and only operators reach hosts.
 *
 * An allow returns a Grant, a proof object only this module can create; the dialer takes nothing
 * else, so no code path can reach a target without passing through here.
 */
export type Action = Right;

export interface AccessRequest {
  user: UserRecord;
  host: HostRecord;
  login: string;
  action: Action;
}

export type DenyReason =
  | 'user_disabled'
  | 'not_operator'
  | 'host_disabled'
  | 'no_grant'
  | 'login_not_granted'
  | 'right_not_granted'
  | 'grant_expired';

declare const grantBrand: unique symbol;

export type Grant = Readonly<{
  grantId: number;
  user: string;
  host: string;
  address: string;
  port: number;
  hostKey: string | null;
  login: string;
  rights: readonly Right[];
  /** Epoch ms when the grant ends, or null. Revocation arms a timer for it. */
  until: number | null;
}> & { readonly [grantBrand]: true };

export type Decision =
  | { allow: true; grant: Grant; explanation: string[] }
  | { allow: false; reason: DenyReason; message: string; explanation: string[] };

const minted = new WeakSet<object>();

/** True only for Grant objects minted by authorize(); the dialer checks this at run time too. */
export function isGrant(value: unknown): value is Grant {
  return typeof value === 'object' && value !== null && minted.has(value);
}

function grantSummary(g: GrantRecord): string {
  const who = g.who.kind === 'user' ? `user ${g.who.name}` : `group ${g.who.name}`;
  const until = g.until === null ? '' : ` until ${isoTime(g.until)}`;
  return `grant #${g.id} (${who} → ${whereText(g.where)}, logins ${g.logins.join(',')}, rights ${g.rights.join(',')}${until})`;
}

function appliesTo(g: GrantRecord, user: UserRecord, host: HostRecord): boolean {
  const who = g.who.kind === 'user' ? g.who.name === user.name : user.groups.includes(g.who.name);
  if (!who) return false;
  switch (g.where.kind) {
    case 'host': return g.where.name === host.name;
    case 'host-group': return host.groups.includes(g.where.name);
    case 'all': return true;
    default: { const never: never = g.where; return never; }
  }
}

/** `sftp` (read-write) includes `sftp-read` (list and download only). */
export function grantsRight(rights: readonly Right[], action: Action): boolean {
  return rights.includes(action) || (action === 'sftp-read' && rights.includes('sftp'));
}

function deny(reason: DenyReason, message: string, explanation: string[]): Decision {
  return { allow: false, reason, message, explanation };
}

export function authorize(req: AccessRequest, grants: readonly GrantRecord[], now: number): Decision {
  const { user, host, login, action } = req;
  const why: string[] = [];
  if (user.disabled) return deny('user_disabled', `user ${user.name} is disabled`, why);
  if (!user.roles.includes('operator')) return deny('not_operator', `user ${user.name} does not have the operator role`, why);
  if (!host.enabled) return deny('host_disabled', `host ${host.name} is disabled`, why);

  const applicable = grants.filter((g) => appliesTo(g, user, host)).sort((a, b) => a.id - b.id);
  if (applicable.length === 0) {
    return deny('no_grant', `no grant gives ${user.name} access to ${host.name}`, [`no grant names ${user.name} (or a group of theirs) and ${host.name}`]);
  }
  let expired = false;
  let loginOk = false;
  for (const g of applicable) {
    const live = g.until === null || g.until > now;
    const hasLogin = g.logins.includes(login);
    const hasRight = grantsRight(g.rights, action);
    if (!live) {
      why.push(`${grantSummary(g)}: expired`);
      if (hasLogin && hasRight) expired = true;
      continue;
    }
    if (!hasLogin) { why.push(`${grantSummary(g)}: does not include login ${login}`); continue; }
    loginOk = true;
    if (!hasRight) { why.push(`${grantSummary(g)}: does not include the ${action} right`); continue; }
    why.push(`${grantSummary(g)}: matches`);
    const grant = Object.freeze({
      grantId: g.id, user: user.name, host: host.name, address: host.address, port: host.port, hostKey: host.hostKey,
      login, rights: Object.freeze([...g.rights]), until: g.until,
    }) as Grant;
    minted.add(grant);
    return { allow: true, grant, explanation: why };
  }
  // A live grant for the login outranks an expired one in the explanation: it is what applies now.
  if (loginOk) return deny('right_not_granted', `${user.name} may log in to ${host.name} as ${login} but not use ${action}`, why);
  if (expired) return deny('grant_expired', `the grant giving ${user.name} ${login}@${host.name} has expired`, why);
  return deny('login_not_granted', `${user.name} may not log in to ${host.name} as ${login}`, why);
}

/**
 * The bastion's own access for a fleet scan (src/fleet, actor `system:fleet`): no operator and no
 * grant row, only an enabled host, the configured scan login and `exec`. Minted here like every
 * Grant (grant id 0), so the dialer's rule holds: no target is reached without this module.
 */
export function authorizeSystem(actor: string, host: HostRecord, login: string): Decision {
  if (!host.enabled) return deny('host_disabled', `host ${host.name} is disabled`, []);
  const grant = Object.freeze({
    grantId: 0, user: actor, host: host.name, address: host.address, port: host.port, hostKey: host.hostKey,
    login, rights: Object.freeze(['exec'] as Right[]), until: null,
  }) as Grant;
  minted.add(grant);
  return { allow: true, grant, explanation: [`${actor} scans enabled hosts as ${login}`] };
}

export interface Reachable {
  host: HostRecord;
  login: string;
  grantId: number;
  /** The proof authorize() minted for this pair, ready for the dialer. */
  grant: Grant;
}

/**
 * Every host/login pair the user may open with `action` now, for the menu and known-hosts. Uses
 * authorize() for each candidate, so it can never disagree with the decision at connect time.
 */
export function reachableTargets(user: UserRecord, hosts: readonly HostRecord[], grants: readonly GrantRecord[], action: Action, now: number): Reachable[] {
  const logins = [...new Set(grants.flatMap((g) => g.logins))].sort();
  const out: Reachable[] = [];
  for (const host of [...hosts].sort((a, b) => a.name.localeCompare(b.name))) {
    for (const login of logins) {
      const d = authorize({ user, host, login, action }, grants, now);
      if (d.allow) out.push({ host, login, grantId: d.grant.grantId, grant: d.grant });
    }
  }
  return out;
}

/** The rights that open an SSH session on a host (what `ssh -J` to it and known-hosts need). */
const SSH_RIGHTS = ['shell', 'exec', 'sftp', 'sftp-read'] as const;

/** The first pair that lets the user open any SSH session on the host now, or null. */
export function firstSshGrant(user: UserRecord, host: HostRecord, grants: readonly GrantRecord[], now: number): Reachable | null {
  for (const a of SSH_RIGHTS) {
    const r = reachableTargets(user, [host], grants, a, now)[0];
    if (r) return r;
  }
  return null;
}

/** Whether the user may open any SSH session on the host now. */
export function maySsh(user: UserRecord, host: HostRecord, grants: readonly GrantRecord[], now: number): boolean {
  return firstSshGrant(user, host, grants, now) !== null;
}
