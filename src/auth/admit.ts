import { draft } from '../audit/events.js';
import type { GrantRecord, HostRecord, Store, UserRecord } from '../store/types.js';
import type { Identity } from './authenticator.js';
import { isSecurityKeyType } from './sshkey.js';
import { authorize, authorizeSystem, firstSshGrant, reachableTargets, type Action, type Grant, type Reachable } from './policy.js';

/**
 * The one gate. Every path that asks "may this identity do this, now?" comes here: exec, shell,
 * menu, subsystem, `ssh -J` opens, port forwards, known-hosts and revocation's re-check. It loads
 * the user, the key and the TOTP enrolment the login relied on, the host and the grants, asks
 * authorize(), and writes `access.denied` for a refusal (unless the caller only probes). The
 * reason codes are one union, so the audit log names a refusal the same way whichever path met it.
 */
export type AdmitReason =
  | 'user_removed' | 'user_disabled' | 'not_operator' | 'key_removed' | 'totp_reset'
  | 'unknown_host' | 'host_disabled' | 'host_key_changed'
  | 'no_grant' | 'login_not_granted' | 'right_not_granted' | 'grant_expired'
  | 'nested_jump' | 'bad_request' | 'security_key_required';

/** What a channel asks to do. `jump` opens an `ssh -J` tunnel: any SSH right on the host will do. */
export type AdmitAction = Action | 'jump';

export interface AdmitRequest {
  host: string;
  /** The login on the target; absent for a jump or a forward from the outer connection (any login). */
  login?: string;
  action: AdmitAction;
  /** The channel kind as the operator asked for it, for the audit row. */
  kind?: string;
  /** Re-checks of a live channel: the host key it was admitted with must still be the pinned one. */
  pinnedHostKey?: string | null;
  /**
   * An `sftp` request that can also run read-only (the sftp subsystem, `scp -f`, `rsync --sender`):
   * without the `sftp` right, the `sftp-read` right admits it, and the Admission says `sftp-read`.
   */
  readOnlyOk?: boolean;
}

/** Who is asking: the identity proven at login, and where it came from. */
export interface Requester {
  identity: Identity;
  source: string;
  session?: string;
}

export type Admission =
  | { allow: true; grant: Grant; host: HostRecord; /** The right the channel runs with, when not the one asked for. */ action?: Action }
  | { allow: false; reason: AdmitReason; message: string };

export interface GateDeps {
  store: Store;
}

export interface AdmitOptions {
  /** Probe only: no `access.denied` row (known-hosts filtering, revocation's re-check). */
  quiet?: boolean;
}

export type IdentityCheck = { ok: true; user: UserRecord } | { ok: false; reason: AdmitReason; message: string };

/**
 * Is this still the identity that proved itself: the same account (not removed and re-created),
 * enabled, the same key, the same TOTP enrolment? The login asks it between the two factors and at
 * success; the gate asks it (plus the operator role) before every action and at every re-check.
 */
export async function checkIdentity(store: Store, id: Identity): Promise<IdentityCheck> {
  const user = await store.users.get(id.user);
  if (!user || user.id !== id.userId) return { ok: false, reason: 'user_removed', message: 'your account no longer exists' };
  if (user.disabled) return { ok: false, reason: 'user_disabled', message: `user ${user.name} is disabled` };
  const key = await store.keys.byFingerprint(id.fingerprint);
  if (!key || key.user !== user.name) return { ok: false, reason: 'key_removed', message: 'the key you logged in with was removed' };
  if (user.requireSecurityKey && !isSecurityKeyType(key.type)) return { ok: false, reason: 'security_key_required', message: `user ${user.name} must now log in with a security key` };
  if (((await store.totp.get(user.name))?.createdAt ?? null) !== id.totpCreatedAt) return { ok: false, reason: 'totp_reset', message: 'your TOTP enrolment was reset' };
  return { ok: true, user };
}

export class Gate {
  constructor(private readonly deps: GateDeps) {}

  async admit(who: Requester, req: AdmitRequest, now: number, opts: AdmitOptions = {}): Promise<Admission> {
    const d = await this.decide(who.identity, req, now);
    if (!d.allow && !opts.quiet) await this.denied(who, req, d.reason);
    return d;
  }

  /** Refuse without asking the store (a request that is malformed or never allowed), audited alike. */
  async refuse(who: Requester, req: AdmitRequest, reason: AdmitReason, message: string): Promise<Admission> {
    await this.denied(who, req, reason);
    return { allow: false, reason, message };
  }

  private async denied(who: Requester, req: AdmitRequest, reason: AdmitReason): Promise<void> {
    await this.deps.store.audit.append(draft('access.denied', 'system', {
      user: who.identity.user, source: who.source, host: printable(req.host, 255), login: printable(req.login ?? '', 255), action: req.action,
      reason, ...(req.kind ? { kind: req.kind } : {}), ...(who.session ? { session: who.session } : {}),
    }));
  }

  /**
   * The bastion's own read-only access (fleet scans, actor `system:fleet`): the host must exist by
   * name and be enabled; the login is `fleet.login`; the right is `exec`. A refusal is audited
   * like an operator's, with the actor as the user.
   */
  async system(actor: string, req: { host: string; login: string }): Promise<Admission> {
    const host = await this.deps.store.hosts.get(req.host);
    const r = host ? authorizeSystem(actor, host, req.login) : null;
    const d: Admission = !host || !r
      ? { allow: false, reason: 'unknown_host', message: `unknown host "${printable(req.host)}"` }
      : r.allow ? { allow: true, grant: r.grant, host } : { allow: false, reason: r.reason, message: r.message };
    if (!d.allow) {
      await this.deps.store.audit.append(draft('access.denied', 'system', {
        user: actor, source: 'bastion', host: printable(req.host, 255), login: printable(req.login, 255), action: 'exec', reason: d.reason, kind: 'fleet',
      }));
    }
    return d;
  }

  /**
   * The login itself, with no target: the account, the key and the TOTP enrolment must still be
   * the ones proven. Revocation asks this of every live connection; every admit() starts with it.
   */
  async identity(id: Identity): Promise<IdentityCheck> {
    const who = await checkIdentity(this.deps.store, id);
    if (!who.ok) return who;
    if (!who.user.roles.includes('operator')) return { ok: false, reason: 'not_operator', message: `user ${who.user.name} does not have the operator role` };
    return who;
  }

  /**
   * Every host/login pair the identity may open with `action` now (the menu, known-hosts). Built
   * from the same decision as admit(), so a listed target is one admit() lets through.
   */
  async reachable(id: Identity, action: AdmitAction, now: number): Promise<Reachable[]> {
    const { store } = this.deps;
    const who = await this.identity(id);
    if (!who.ok) return [];
    const [hosts, grants] = await Promise.all([store.hosts.list(), store.grants.list()]);
    if (action !== 'jump') return reachableTargets(who.user, hosts, grants, action, now);
    return hosts.flatMap((h) => firstSshGrant(who.user, h, grants, now) ?? []);
  }

  /**
   * The enabled hosts of a host group, by name (a multi-host run, `LOGIN@group:NAME CMD`). Nothing
   * is decided here: the run then admits each host like any other.
   */
  async groupHosts(group: string): Promise<HostRecord[]> {
    return (await this.deps.store.hosts.list()).filter((h) => h.enabled && h.groups.includes(group)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Where a direct-tcpip channel points (nothing is decided here): the host it names, by name or
   * by its unique address, and the host whose SSH port that address and port are, if any.
   */
  async destination(nameOrAddress: string, port: number): Promise<{ host: HostRecord; sshOf: HostRecord | null } | null> {
    const hosts = await this.deps.store.hosts.list();
    const host = findHost(hosts, nameOrAddress);
    return host ? { host, sshOf: hosts.find((h) => h.address === host.address && h.port === port) ?? null } : null;
  }

  /**
   * Revocation's re-check of one live session: the identity once, then every channel it holds
   * against one read of the hosts and grants. The same decision as admit(), never audited here
   * (the caller writes session.terminated with the reason).
   */
  async recheck(id: Identity, channels: readonly AdmitRequest[], now: number): Promise<{ identity: IdentityCheck; channels: Admission[] }> {
    const who = await this.identity(id);
    if (!who.ok) return { identity: who, channels: [] };
    const [hosts, grants] = await Promise.all([this.deps.store.hosts.list(), this.deps.store.grants.list()]);
    return { identity: who, channels: channels.map((req) => decideFor(who.user, hosts, grants, req, now)) };
  }

  private async decide(id: Identity, req: AdmitRequest, now: number): Promise<Admission> {
    const who = await this.identity(id);
    if (!who.ok) return { allow: false, reason: who.reason, message: who.message };
    const [hosts, grants] = await Promise.all([this.deps.store.hosts.list(), this.deps.store.grants.list()]);
    return decideFor(who.user, hosts, grants, req, now);
  }
}

/** The decision for an identity already checked, on one read of the hosts and grants. */
function decideFor(user: UserRecord, hosts: HostRecord[], grants: GrantRecord[], req: AdmitRequest, now: number): Admission {
  const deny = (reason: AdmitReason, message: string): Admission => ({ allow: false, reason, message });
  const host = findHost(hosts, req.host);
  if (!host) return deny('unknown_host', `unknown host "${printable(req.host)}"`);
  if (req.pinnedHostKey !== undefined && host.hostKey !== req.pinnedHostKey) return deny('host_key_changed', `the host key of ${host.name} changed`);

  if (req.login !== undefined && req.action !== 'jump') {
    const d = authorize({ user, host, login: req.login, action: req.action }, grants, now);
    if (!d.allow && req.action === 'sftp' && req.readOnlyOk) {
      const r = authorize({ user, host, login: req.login, action: 'sftp-read' }, grants, now);
      if (r.allow) return { allow: true, grant: r.grant, host, action: 'sftp-read' };
    }
    return d.allow ? { allow: true, grant: d.grant, host } : deny(d.reason, d.message);
  }
  // No login named: the first login (in order) that the action may use.
  const r = req.action === 'jump' ? firstSshGrant(user, host, grants, now) : reachableTargets(user, [host], grants, req.action, now)[0];
  if (r) return { allow: true, grant: r.grant, host };
  // The account was checked above; what is left to name is a disabled host or no grant at all.
  const probe = authorize({ user, host, login: '', action: req.action === 'jump' ? 'shell' : req.action }, grants, now);
  if (!probe.allow && (probe.reason === 'host_disabled' || probe.reason === 'no_grant')) return deny(probe.reason, probe.message);
  return req.action === 'jump'
    ? deny('right_not_granted', `no grant gives ${user.name} an SSH login on ${host.name}`)
    : deny('right_not_granted', `${req.action === 'forward' ? 'port forwarding' : req.action} to ${host.name} needs the ${req.action} right`);
}

/** A host by name, or by address when exactly one host has it. */
export function findHost(hosts: HostRecord[], nameOrAddress: string): HostRecord | null {
  const byName = hosts.find((h) => h.name === nameOrAddress);
  if (byName) return byName;
  const byAddress = hosts.filter((h) => h.address === nameOrAddress);
  return byAddress.length === 1 ? byAddress[0]! : null;
}

/** Operator-supplied text echoed back in a message: short, and no control characters. */
export function printable(s: string, max = 80): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
