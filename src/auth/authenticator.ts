import type { AuthContext } from 'ssh2';
import { draft, type AuditPayloads, type AuthFailureReason } from '../audit/events.js';
import type { Config } from '../config/schema.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Store, TotpRecord } from '../store/types.js';
import { fingerprintOf, isSecurityKeyType, isWeakSignature } from './sshkey.js';
import { proveKey } from './keyproof.js';
import type { MfaGrace, Throttle } from './throttle.js';
import { clientName } from './names.js';
import type { PendingMfa } from './pending.js';
import { checkSecondFactor } from './secondfactor.js';
import { checkIdentity } from './admit.js';

/**
 * Two factors on every connection: the public key first (a query gets PK_OK, a signature is
 * verified against the stored key), answered with partial success that leaves only
 * keyboard-interactive; then one TOTP prompt. A FIDO2 security key (sk- key) whose signature
 * shows a touch (and a PIN when the key requires one) with a growing counter is both factors at
 * once under `auth.securityKeys: second-factor` (the default): the key cannot be phished or
 * copied, a TOTP code can. ssh2 enforces neither an attempt limit nor any of this ordering: it is
 * all here.
 */
export const MAX_AUTH_ATTEMPTS = 6;
export const TOTP_PROMPT = 'Verification code: ';

export interface Identity {
  user: string;
  userId: number;
  fingerprint: string;
  /** The TOTP enrolment this login relied on: a reset (and re-enrolment) revokes the session. */
  totpCreatedAt: number | null;
}

export interface AuthDeps {
  store: Store;
  clock: Clock;
  config: Config;
  masterKey: Buffer;
  log: Logger;
  throttle: Throttle;
  grace: MfaGrace;
  /** Shared by all connections: caps how many of one user's connections wait at the TOTP prompt. */
  pendingMfa: PendingMfa;
  /** Non-null while no login can be accepted (the store is unreachable, cluster/): the line said why. */
  unavailable?: () => string | null;
}

/** Per-connection authentication state machine; `identity` is set once both factors passed. */
export class ConnectionAuth {
  attempts = 0;
  identity: Identity | null = null;
  private factor1: Identity | null = null;
  /** The first factor was a security key (the success then says publickey-sk+totp). */
  private factor1Sk = false;
  /** Said once through keyboard-interactive when a login was refused for a reason the user must see. */
  private notice: string | null = null;
  /** Set when the connection must be closed (too many attempts). */
  onGiveUp: () => void = () => undefined;
  private disposed = false;

  constructor(private readonly deps: AuthDeps, private readonly source: string) {}

  /** The connection closed: give up its seat at the TOTP prompt. Safe to call more than once. */
  dispose(): void {
    this.disposed = true;
    this.backToKey();
  }

  /** Forget the first factor (and the seat at the prompt it held): the key is asked again. */
  private backToKey(): void {
    if (this.factor1) void this.deps.pendingMfa.leave(this.factor1.user, this);
    this.factor1 = null;
    this.factor1Sk = false;
  }

  handle(ctx: AuthContext): void {
    this.step(ctx).catch((err: unknown) => {
      this.deps.log.error({ err, source: this.source }, 'authentication error');
      ctx.reject();
    });
  }

  private async fail(ctx: AuthContext, user: string, reason: AuthFailureReason, methods: string[], partial = false, key?: string): Promise<void> {
    const { store, throttle } = this.deps;
    await store.audit.append(draft('auth.failure', 'system', { user: clientName(user), source: this.source, reason, ...(key ? { key } : {}) }));
    const delay = await throttle.failure(this.source);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    ctx.reject(methods as never, partial);
  }

  private async step(ctx: AuthContext): Promise<void> {
    const { store } = this.deps;
    const down = this.deps.unavailable?.() ?? null;
    if (down !== null) {
      // Nothing can be checked (nor audited): say why through keyboard-interactive, the one place
      // OpenSSH shows a server's words before authentication ends.
      this.backToKey();
      if (++this.attempts > MAX_AUTH_ATTEMPTS) { ctx.reject(); this.onGiveUp(); return; }
      if (ctx.method === 'keyboard-interactive') return this.tell(ctx, `gatehouse: ${down}`);
      ctx.reject(['keyboard-interactive']);
      return;
    }
    if (++this.attempts > MAX_AUTH_ATTEMPTS) {
      await store.audit.append(draft('auth.failure', 'system', { user: clientName(ctx.username), source: this.source, reason: 'too_many_attempts' }));
      this.backToKey();
      ctx.reject();
      this.onGiveUp();
      return;
    }
    if (ctx.method === 'publickey') return this.publicKey(ctx);
    if (ctx.method === 'keyboard-interactive' && this.factor1 && this.factor1.user === ctx.username) return this.totp(ctx, this.factor1);
    if (ctx.method === 'keyboard-interactive' && !this.factor1 && this.notice !== null) return this.tell(ctx, this.notice);
    // "none" probes and anything else: say what we accept, without counting a failure.
    ctx.reject(this.factor1 ? ['keyboard-interactive'] : ['publickey'], this.factor1 !== null);
  }

  private async publicKey(ctx: AuthContext & { method: 'publickey' }): Promise<void> {
    const { store, clock, grace, config } = this.deps;
    const fp = fingerprintOf(ctx.key.data);
    if (isWeakSignature(ctx)) {
      return this.fail(ctx, ctx.username, 'weak_signature', ['publickey'], false, fp);
    }
    const key = await store.keys.byFingerprint(fp);
    if (!key) return this.fail(ctx, ctx.username, 'unknown_key', ['publickey'], false, fp);
    if (key.user !== ctx.username) return this.fail(ctx, ctx.username, 'key_user_mismatch', ['publickey'], false, fp);
    const user = await store.users.get(key.user);
    if (!user) return this.fail(ctx, ctx.username, 'unknown_key', ['publickey'], false, fp);
    if (user.disabled) return this.fail(ctx, user.name, 'user_disabled', ['publickey'], false, fp);
    if ((await store.lockout.lockedUntil(user.id, clock.now())) !== null) return this.fail(ctx, user.name, 'locked', ['publickey'], false, fp);
    const securityKey = isSecurityKeyType(key.type);
    if (user.requireSecurityKey && !securityKey) {
      // Refused at the query already: the key would never do. keyboard-interactive stays offered
      // only to say why (OpenSSH shows nothing else before authentication ends).
      this.notice = `gatehouse: ${user.name} must log in with a security key (ed25519-sk or ecdsa-sk): the key ${fp} is not one.`;
      return this.fail(ctx, user.name, 'security_key_required', ['publickey', 'keyboard-interactive'], false, fp);
    }

    if (!ctx.signature || !ctx.blob) {
      ctx.accept(); // PK_OK: "this key would do"; proves nothing yet
      return;
    }
    const proof = await proveKey(store, key, ctx);
    if (!proof.ok) return this.fail(ctx, user.name, proof.reason, ['publickey'], false, fp);
    const totp = await store.totp.get(user.name);
    const who: Identity = { user: user.name, userId: user.id, fingerprint: fp, totpCreatedAt: totp?.createdAt ?? null };
    if (proof.securityKey && config.auth.securityKeys === 'second-factor') {
      // Both factors passed, as a right TOTP code would: the failed-login count starts again.
      await store.lockout.clear(user.id);
      this.backToKey();
      return this.succeed(ctx, who, 'publickey-sk');
    }
    // Grace needs the same TOTP enrolment as when it was granted: a reset ends the trust.
    if (config.auth.mfaGrace > 0 && totp && (await grace.trusts(user.name, fp, this.source, totp.createdAt))) {
      this.backToKey();
      return this.succeed(ctx, who, 'publickey+grace');
    }
    if (this.factor1 && this.factor1.user !== user.name) this.backToKey();
    if (!(await this.deps.pendingMfa.enter(user.name, this))) {
      this.deps.log.warn({ user: user.name, source: this.source, limit: this.deps.pendingMfa.limit }, 'too many connections of this user wait at the TOTP prompt');
      return this.fail(ctx, user.name, 'too_many_pending_mfa', ['publickey'], false, fp);
    }
    this.factor1 = who;
    this.factor1Sk = proof.securityKey;
    // Closed while the seat was being taken: give it back now rather than at its expiry.
    if (this.disposed) { this.backToKey(); return; }
    ctx.reject(['keyboard-interactive'], true);
  }

  private async totp(ctx: AuthContext & { method: 'keyboard-interactive' }, who: Identity): Promise<void> {
    const { store } = this.deps;
    const rec = await store.totp.get(who.user);
    if (!rec && who.totpCreatedAt !== null) return this.endChanged(ctx, who, 'totp_reset');
    if (!rec) {
      // Said through the keyboard-interactive instruction: the only text OpenSSH shows before auth ends.
      await new Promise<void>((resolve) => ctx.prompt([], '', `gatehouse: no TOTP is enrolled for ${who.user}: ask an admin to enrol you (gatehouse user totp enroll ${who.user}).`, () => resolve()));
      return this.fail(ctx, who.user, 'no_totp', ['keyboard-interactive'], true, who.fingerprint);
    }
    const answers = await new Promise<string[] | Error>((resolve) =>
      ctx.prompt([{ prompt: TOTP_PROMPT, echo: false }], '', '', (a) => resolve(a as string[] | Error)));
    if (answers instanceof Error) return; // the client started another method; ssh2 already moved on
    // Checked at every answer, before the code: a connection that reached the prompt before other
    // connections' failures locked the user must not log in with the right code, and a change an
    // admin made while the prompt waited ends the login without counting a failure against the
    // user. Between this check and the failure count below there are only synchronous store
    // calls, so answers arriving on many connections at once are counted one after the other.
    const before = await this.changedSinceKey(who, rec);
    if (before !== null) return this.endChanged(ctx, who, before);
    const r = await checkSecondFactor(this.deps, who, rec, String(answers[0] ?? ''), this.source);
    if (!r.ok) {
      if (r.lockedUntil === null) return this.fail(ctx, who.user, r.reason, ['keyboard-interactive'], true, who.fingerprint);
      // Locked now: back to the first factor, which refuses a locked user.
      this.backToKey();
      return this.fail(ctx, who.user, r.reason, ['publickey'], false, who.fingerprint);
    }
    // And again at the moment of success, for a change that landed while the code was checked.
    const changed = await this.changedSinceKey(who, rec);
    if (changed !== null) return this.endChanged(ctx, who, changed);
    // A trust that cannot be stored only means the next login asks for the code again.
    await this.deps.grace.remember(who.user, who.fingerprint, this.source, rec.createdAt)
      .catch((err: unknown) => this.deps.log.warn({ err, user: who.user }, 'could not store the mfaGrace trust'));
    const sk = this.factor1Sk;
    this.backToKey();
    return this.succeed(ctx, { ...who, totpCreatedAt: rec.createdAt }, sk ? 'publickey-sk+totp' : 'publickey+totp');
  }

  /** Show a message as a keyboard-interactive instruction, then refuse: back to the key. */
  private async tell(ctx: AuthContext & { method: 'keyboard-interactive' }, text: string): Promise<void> {
    this.notice = null;
    await new Promise<void>((resolve) => ctx.prompt([], '', text, () => resolve()));
    ctx.reject(['publickey']);
  }

  private async endChanged(ctx: AuthContext, who: Identity, change: string): Promise<void> {
    if (change !== 'locked') this.deps.log.warn({ user: who.user, source: this.source, change }, 'login refused: the account changed between the key and the TOTP code');
    this.backToKey();
    return this.fail(ctx, who.user, change === 'locked' ? 'locked' : 'changed_during_login', ['publickey'], false, who.fingerprint);
  }

  /**
   * The key was checked when it signed, the code now; an admin may have acted in between (the
   * prompt can wait for the whole login grace time). Everything the key step relied on, and the
   * lock, is read again when the code arrives and at the moment of success: what changed, or null.
   */
  private async changedSinceKey(who: Identity, rec: TotpRecord): Promise<string | null> {
    const { store, clock } = this.deps;
    // The enrolment the prompt was opened for: the code is checked against this record.
    const id = { ...who, totpCreatedAt: who.totpCreatedAt ?? rec.createdAt };
    if (rec.createdAt !== id.totpCreatedAt) return 'totp_reset';
    const same = await checkIdentity(store, id);
    if (!same.ok) return same.reason;
    if ((await store.lockout.lockedUntil(same.user.id, clock.now())) !== null) return 'locked';
    return null;
  }

  private async succeed(ctx: AuthContext, who: Identity, method: AuditPayloads['auth.success']['method']): Promise<void> {
    await this.deps.store.audit.append(draft('auth.success', 'system', { user: who.user, key: who.fingerprint, source: this.source, method }));
    this.deps.throttle.success(this.source);
    this.identity = who;
    ctx.accept();
  }
}
