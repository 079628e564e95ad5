import type { Client, ClientChannel, Connection, PseudoTtyInfo, ServerChannel } from 'ssh2';
import { draft } from '../audit/events.js';
import type { Admission, AdmitRequest, Gate } from '../auth/admit.js';
import { ConnectionAuth, type AuthDeps, type Identity } from '../auth/authenticator.js';
import type { Action, Grant } from '../auth/policy.js';
import type { ChannelFilter, ChannelInfo, ObserverFactory } from '../shared/channel.js';
import type { Ids } from '../shared/ids.js';
import { dial, DialFailure } from './dialer.js';
import type { ChannelPurpose, Credentials, TargetAuth } from './targetauth.js';
import type { HostRecord } from '../store/types.js';
import { isoTime } from '../shared/clock.js';
import { fanOut, relayChannel, watchExit, type ChannelObserver } from './relay.js';
import { refuse } from './reject.js';
import type { TargetRequest } from './target.js';

/**
 * One operator connection, from accept to end. Its life, in order:
 *
 *   accept        proxy/server hands over the ssh2 connection (pre-auth limits already applied)
 *   authenticate  auth/authenticator: key, then TOTP (attempt limit, lockout, grace timer)
 *   open          the session row and session.start; or refused (sessions.maxPerUser)
 *   per channel   choose the target (proxy/channels: exec, menu, -J; proxy/jump: forwards)
 *     admit       auth/admit: the one gate; a Grant or access.denied
 *     dial        proxy/dialer, with the Grant only (pinned host key)
 *     relay       proxy/relay, observed by the observers assembled in app.ts
 *   end           channels told why, upstreams closed, the session row closed, session.end
 *
 * Its state is private: revocation, limits and the web UI use the LiveSession methods, nothing
 * writes its fields from outside. A connection that is not live (still opening, refused, ending)
 * serves no channel of any kind.
 */
export interface ConnectionDeps extends AuthDeps {
  ids: Ids;
  gate: Gate;
  clientKey: Buffer;
  /** Credentials for hosts with `--auth cert` (an ephemeral key and a certificate per channel). */
  targetAuth?: TargetAuth;
  observers: ObserverFactory;
  /** The name this node writes on its session rows. */
  node: string;
}

/** What the server keeps for the connections it holds (the live registry and the limits). */
export interface ConnectionHooks {
  /** Both factors passed: the pre-auth slot and the login grace timer end here. */
  authenticated(): void;
  register(c: LiveSession): void;
  unregister(c: LiveSession): void;
  /** Work the server waits for before it stops (session rows being closed). */
  track(p: Promise<unknown>): void;
  /** A channel started relaying under this grant (revocation arms its expiry). */
  relaying(grant: Grant): void;
  /** Drop the TCP connection without waiting for the client (one that ignores DISCONNECT). */
  destroy(): void;
}

/** A relayed channel, as revocation sees it: what it was admitted with, and how to end it. */
export interface ActiveChannel {
  readonly channel: number;
  readonly grant: Grant;
  readonly action: Action;
  /** Say one line to the operator, then close the channel. */
  end(message: string): void;
  /** Write a line to the operator without ending anything (idle warning). */
  notify(message: string): void;
}

/** A live session as the rest of the server sees it. */
export interface LiveSession {
  readonly id: string;
  readonly identity: Identity;
  readonly source: string;
  readonly startedAt: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly lastActivity: number;
  channels(): ActiveChannel[];
  /** End the whole connection: channels get the message, then the connection closes. */
  end(reason: string, message: string): void;
  endChannel(channel: number, message: string): void;
  /** The idle warning, once per idle period. */
  warnIdle(message: string): void;
}

/** What a session channel asks for once its target is chosen. */
export interface ChannelRequest {
  target: TargetRequest;
  kind: ChannelInfo['kind'];
  action: Action;
  /** A transfer that may run under `sftp-read` (see AdmitRequest.readOnlyOk). */
  readOnlyOk?: boolean;
  pty: PseudoTtyInfo | null;
  env: Record<string, string>;
  /** The relay started: window changes and signals go upstream, resizes to the observers. */
  started(up: ClientChannel, obs: Required<ChannelObserver>): void;
}

type Phase = 'authenticating' | 'opening' | 'live' | 'refused' | 'ended';

/** A channel refused before a byte moved: zero bytes, and the SHA-256 of nothing. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const NO_STREAMS = { stdinBytes: 0, stdoutBytes: 0, stderrBytes: 0, stdinSha256: EMPTY_SHA256, stdoutSha256: EMPTY_SHA256, stderrSha256: EMPTY_SHA256 };
/** A refused connection is closed after this, whether or not the client opened a channel. */
const REFUSED_CLOSE_MS = 2_000;
/** How long an ending connection waits for its channels to say goodbye. */
const END_WAIT_MS = 1_000;
/** How long a client may take to close after DISCONNECT before its socket is destroyed. */
const HANG_UP_MS = 2_000;

export class OperatorConnection implements LiveSession {
  readonly id: string;
  private phase: Phase = 'authenticating';
  private readonly auth: ConnectionAuth;
  private who: Identity | null = null;
  private started = 0;
  private last = 0;
  private idleWarned = false;
  private up = 0;
  private down = 0;
  private endReason = 'client_closed';
  private refusal = '';
  private opened: Promise<void> = Promise.resolve();
  private nextChannel = 0;
  private readonly active = new Map<number, ActiveChannel>();
  private readonly upstreams = new Map<string, Promise<Client>>();
  private readonly closers = new Set<() => void>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly conn: Connection,
    readonly source: string,
    private readonly deps: ConnectionDeps,
    private readonly hooks: ConnectionHooks,
    private readonly channelHandlers: ChannelHandlers,
  ) {
    this.id = deps.ids.sessionId();
    this.auth = new ConnectionAuth(deps, source);
  }

  // ── accept ──────────────────────────────────────────────────────────────────────────────────
  accept(): void {
    const { conn } = this;
    this.auth.onGiveUp = () => conn.end();
    conn.on('authentication', (ctx) => this.auth.handle(ctx));
    conn.on('ready', () => this.authenticated());
    conn.on('error', (err) => this.deps.log.debug({ err: err.message, source: this.source }, 'connection error'));
    conn.on('close', () => this.closed());
  }

  // ── authenticate ────────────────────────────────────────────────────────────────────────────
  private authenticated(): void {
    this.who = this.auth.identity!;
    this.hooks.authenticated();
    this.started = this.last = this.deps.clock.now();
    this.opened = this.open();
    this.opened.catch((err: unknown) => this.deps.log.error({ err, session: this.id }, 'opening the session failed'));
    // Every kind of channel goes through the same live check, so a refused or ending connection
    // carries nothing: no shell, no forward, no jump.
    this.conn.on('session', (accept) => this.channelHandlers.session(accept(), this));
    this.conn.on('tcpip', (accept, reject, info) => this.channelHandlers.tcpip(accept, reject, info, this));
    this.conn.on('openssh.streamlocal', (_accept, reject) => this.channelHandlers.refused(reject, 'unix socket forwarding is refused'));
    this.conn.on('request', (_accept, reject) => reject?.());
  }

  // ── open: the session row, or a refusal ─────────────────────────────────────────────────────
  private async open(): Promise<void> {
    const { store, config } = this.deps;
    const identity = this.identity;
    this.phase = 'opening';
    // Registered at once, so revocation sees it while it opens; unregistered if refused.
    this.hooks.register(this);
    try {
      // The seat count and the session row in one store step, across every worker and node, so two
      // connections racing for the last seat get one (sessions of dead nodes do not count).
      const seat = await store.logins.openSession(
        { id: this.id, user: identity.user, keyFingerprint: identity.fingerprint, sourceAddr: this.source, mode: 'command', node: this.deps.node },
        { limit: config.sessions.maxPerUser, deadAfterMs: config.node.deadAfter });
      if (!seat.opened) {
        this.hooks.unregister(this);
        if (this.phase === 'opening') this.phase = 'refused';
        this.endReason = 'refused';
        this.refusal = `you already have ${seat.live} live sessions (the limit is ${config.sessions.maxPerUser}); end one first`;
        const t = setTimeout(() => this.hangUp(), REFUSED_CLOSE_MS);
        t.unref();
        await store.audit.append(draft('session.refused', 'system', { user: identity.user, source: this.source, reason: 'max_per_user', live: seat.live, limit: config.sessions.maxPerUser }));
        return;
      }
      await store.audit.append(draft('session.start', 'system', { session: this.id, user: identity.user, source: this.source, key: identity.fingerprint }));
      if (this.phase === 'opening') this.phase = 'live';
    } catch (err) {
      this.phase = 'refused';
      this.refusal = 'internal error; the administrators can find it in the log';
      this.hooks.unregister(this);
      throw err;
    }
  }

  /** Waits until the session is open; null when channels may run, else the line to refuse them with. */
  async admission(): Promise<string | null> {
    await this.opened.catch(() => undefined);
    if (this.phase === 'live') return null;
    if (this.phase === 'refused') return this.refusal;
    return 'this session is ending';
  }

  // ── admit ───────────────────────────────────────────────────────────────────────────────────
  admit(req: AdmitRequest): Promise<Admission> {
    return this.deps.gate.admit({ identity: this.identity, source: this.source, session: this.id }, req, this.deps.clock.now());
  }

  /** Refusals decided before the gate is asked (a request no grant could ever allow), audited alike. */
  deny(req: AdmitRequest, reason: Parameters<Gate['refuse']>[2], message: string): Promise<Admission> {
    return this.deps.gate.refuse({ identity: this.identity, source: this.source, session: this.id }, req, reason, message);
  }

  get gate(): Gate {
    return this.deps.gate;
  }

  now(): number {
    return this.deps.clock.now();
  }

  logError(err: unknown, message: string): void {
    this.deps.log.error({ err, session: this.id }, message);
  }

  logDebug(fields: Record<string, unknown>, message: string): void {
    this.deps.log.debug({ ...fields, session: this.id }, message);
  }

  // ── admit → dial → relay + record, for one session channel ──────────────────────────────────
  async serve(down: ServerChannel, req: ChannelRequest): Promise<void> {
    const { store, log } = this.deps;
    const tty = req.pty !== null;
    const { target } = req;
    const d = await this.admit({ host: target.host, login: target.login, action: req.action, kind: req.kind, ...(req.readOnlyOk ? { readOnlyOk: true } : {}) });
    if (!d.allow) return refuse(down, tty, d.reason === 'unknown_host' ? d.message : `access denied: ${d.message}`, 1);
    const grant = d.grant;
    // The right the channel runs with: `sftp-read` when that is what admitted it (read-only).
    const action = d.action ?? req.action;
    if (this.phase !== 'live') return refuse(down, tty, 'this session is ending', 1);

    // From admission on, the channel belongs to the session: revocation, kill and the limits see
    // it while it is still dialing, and ending it closes the target side at once, whether or not
    // the operator's client ever answers.
    const channel = this.nextChannel++;
    let channelUpstream: (() => void) | null = null;
    let up: ClientChannel | null = null;
    let ended: string | null = null;
    const nl = tty ? '\r\n' : '\n';
    const endChannel = (message: string, status: number) => {
      if (ended !== null) return;
      ended = message;
      refuse(down, tty, message, status);
      up?.close();
    };
    this.addChannel({
      channel, grant, action,
      end: (message) => endChannel(message, 255),
      notify: (message) => { try { down.stderr.write(`${nl}gatehouse: ${message}${nl}`); } catch { /* closed */ } },
    });
    try {
      let client: Client;
      let cert: Credentials['cert'];
      try {
        ({ client, cert } = await this.dial(grant, d.host, { session: this.id, channel, kind: req.kind, pty: tty }));
        // A certificate's connection is this channel's own: it ends with the channel.
        if (cert) { const own = client; channelUpstream = () => own.end(); }
      } catch (err) {
        if (ended !== null) return;
        return await this.dialFailed(down, tty, grant, err);
      }
      if (ended !== null) return;

      const command = target.subsystem ?? target.command;
      const info: ChannelInfo = {
        sessionId: this.id, channel, user: this.identity.user, host: grant.host, login: grant.login, kind: req.kind, command, action,
        pty: req.pty ? { cols: req.pty.cols, rows: req.pty.rows, term: req.pty.term } : null,
      };
      await store.sessions.setTarget(this.id, grant.host, grant.login, grant.grantId);
      await store.sessions.openChannel({ sessionId: this.id, channel, kind: req.kind, command, pty: tty, host: grant.host, login: grant.login });
      await store.audit.append(draft('session.channel', 'system', {
        session: this.id, user: this.identity.user, channel, kind: req.kind, host: grant.host, login: grant.login, command, grant: grant.grantId,
        ...(cert ? { certSerial: cert.serial, certKeyId: cert.keyId, certValidBefore: isoTime(cert.validBefore * 1000) } : {}),
      }));

      let obs: Required<ChannelObserver>;
      let filter: ChannelFilter | undefined;
      try {
        const observers = await this.deps.observers(info, {
          abort: (message) => endChannel(message, 255), track: (p) => this.track(p), counter: this.counter(),
          filter: (f) => { filter = f; },
        });
        obs = fanOut(observers, (err) => log.error({ err, session: this.id }, 'observer failed'));
      } catch (err) {
        // Refused before a byte moved (the recording cannot be written): the row says so.
        await store.sessions.closeChannel({ sessionId: this.id, channel, exitStatus: null, exitSignal: null, ...NO_STREAMS });
        return endChannel(err instanceof Error ? err.message : String(err), 1);
      }

      const env = Object.keys(req.env).length ? req.env : undefined;
      const opened = await new Promise<ClientChannel>((resolve, reject) => {
        const cb = (err: Error | undefined, ch: ClientChannel) => (err ? reject(err) : resolve(watchExit(ch)));
        if (target.subsystem) client.subsys(target.subsystem, cb);
        else if (target.command === null) client.shell(req.pty ?? false, { env } as never, cb);
        else client.exec(target.command, { env, pty: req.pty ?? undefined } as never, cb);
      }).catch((err: Error) => {
        obs.onEnd({ code: null, signal: null, coreDumped: false, description: '' }, 'target_closed');
        endChannel(`the target refused the session: ${err.message}`, 1);
        return null;
      });
      if (!opened) return;
      up = opened;
      const unregister = this.onClose(() => opened.close());
      req.started(opened, obs);
      const relayed = relayChannel(down, opened, obs, filter);
      // Ended while it was connecting: the relay records the end and closes both sides.
      if (ended !== null) opened.close();
      await relayed;
      unregister();
    } finally {
      this.active.delete(channel);
      channelUpstream?.();
    }
  }

  // ── dial ────────────────────────────────────────────────────────────────────────────────────
  /**
   * One target connection per login@host, shared by its channels (ControlMaster costs one upstream).
   * A host with `--auth cert` gets one per channel instead: the certificate's key id names the
   * channel, and its pty and forwarding extensions fit that channel only.
   */
  private async dial(grant: Grant, host: HostRecord, purpose: ChannelPurpose): Promise<{ client: Client; cert?: Credentials['cert'] }> {
    if (host.auth === 'cert') {
      let creds: Credentials;
      try {
        if (!this.deps.targetAuth) throw new Error('no certificate authority is configured');
        creds = this.deps.targetAuth.credentials(grant, 'cert', purpose);
      } catch (err) {
        this.deps.log.error({ err, session: this.id }, 'signing a target certificate failed');
        throw new DialFailure({ kind: 'connect_failed', message: 'cannot sign a certificate for the target; the administrators can find why in the log' });
      }
      return { client: await this.upstream(`${grant.login}@${grant.host}#${purpose.channel}`, () => dial(grant, { clientKey: creds.privateKey, certificate: creds.certificate })), cert: creds.cert };
    }
    return { client: await this.upstream(`${grant.login}@${grant.host}`, () => dial(grant, { clientKey: this.deps.clientKey })) };
  }

  /** The upstream connection under this key, dialed once; closeTargets() ends them all. */
  private upstream(key: string, make: () => Promise<Client>): Promise<Client> {
    let p = this.upstreams.get(key);
    if (!p) {
      p = make();
      this.upstreams.set(key, p);
      p.then((c) => {
        c.on('close', () => this.upstreams.delete(key));
        c.on('error', () => undefined);
        // The connection ended while the dial was under way: nothing may keep the target open.
        if (this.phase === 'ended') c.end();
      }, () => this.upstreams.delete(key));
    }
    return p;
  }

  private async dialFailed(down: ServerChannel, tty: boolean, grant: Grant, err: unknown): Promise<void> {
    const { store } = this.deps;
    if (err instanceof DialFailure && err.detail.kind === 'host_key_mismatch') {
      await store.audit.append(draft('host.key_mismatch', 'system', {
        host: grant.host, expected: err.detail.expected, presented: err.detail.presented, user: this.identity.user, session: this.id,
      }));
      return refuse(down, tty, `host key of ${grant.host} changed, ask an admin`, 1);
    }
    const message = err instanceof Error ? err.message : String(err);
    await store.audit.append(draft('target.connect_failed', 'system', { host: grant.host, login: grant.login, user: this.identity.user, session: this.id, error: message }));
    refuse(down, tty, err instanceof DialFailure && err.detail.kind === 'not_pinned' ? message : `cannot reach ${grant.host}: ${message}`, 1);
  }

  // ── relay bookkeeping: counters, channels, work to wait for ─────────────────────────────────
  /** Bytes for the session row and activity for the idle timeout, from every relayed channel. */
  private counter(): ChannelObserver {
    return {
      onInput: (d) => { this.up += d.length; this.touch(); },
      onOutput: (d) => { this.down += d.length; this.touch(); },
    };
  }

  /** Forwards count their bytes and activity here (they are not session channels). */
  counted(upBytes: number, downBytes: number): void {
    this.up += upBytes;
    this.down += downBytes;
    this.touch();
  }

  private touch(): void {
    this.last = this.deps.clock.now();
    this.idleWarned = false;
  }

  channelNumber(): number {
    return this.nextChannel++;
  }

  addChannel(ch: ActiveChannel): void {
    this.active.set(ch.channel, ch);
    this.hooks.relaying(ch.grant);
  }

  removeChannel(channel: number): void {
    this.active.delete(channel);
  }

  /** Keep the session open until this finishes (a recording being finalized, an audit row). */
  track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Something to run when the connection ends (close a channel, end a relay). */
  onClose(fn: () => void): () => void {
    this.closers.add(fn);
    return () => this.closers.delete(fn);
  }

  // ── LiveSession ─────────────────────────────────────────────────────────────────────────────
  get identity(): Identity {
    if (!this.who) throw new Error('the connection is not authenticated');
    return this.who;
  }

  get startedAt(): number { return this.started; }
  get bytesUp(): number { return this.up; }
  get bytesDown(): number { return this.down; }
  get lastActivity(): number { return this.last; }

  channels(): ActiveChannel[] {
    return [...this.active.values()];
  }

  endChannel(channel: number, message: string): void {
    const ch = this.active.get(channel);
    if (!ch) return;
    this.active.delete(channel);
    ch.end(message);
  }

  warnIdle(message: string): void {
    if (this.idleWarned || this.active.size === 0) return;
    this.idleWarned = true;
    for (const ch of this.active.values()) ch.notify(message);
  }

  end(reason: string, message: string): void {
    if (this.phase === 'ended') return;
    this.phase = 'ended';
    this.endReason = reason;
    // Each channel gets the message (stderr, exit 255, close) and its target side is closed now;
    // the targets go at once, whatever the client does. The client gets a second to read the
    // messages, then DISCONNECT, and a client that ignores that loses its TCP connection.
    for (const ch of this.active.values()) ch.end(message);
    this.closeTargets();
    let waited = 0;
    const closeWhenDone = setInterval(() => {
      waited += 50;
      if (this.active.size === 0 || waited >= END_WAIT_MS) {
        clearInterval(closeWhenDone);
        this.hangUp();
      }
    }, 50);
  }

  /** DISCONNECT, then the socket itself if the client has not closed it in time. */
  private hangUp(): void {
    this.conn.end();
    setTimeout(() => this.hooks.destroy(), HANG_UP_MS).unref();
  }

  /** Every target-side channel, forward and upstream connection of this session, now. */
  private closeTargets(): void {
    for (const fn of this.closers) fn();
    this.closers.clear();
    for (const p of this.upstreams.values()) p.then((c) => c.end(), () => undefined);
    this.upstreams.clear();
  }

  // ── end ─────────────────────────────────────────────────────────────────────────────────────
  private closed(): void {
    const wasAuthenticated = this.who !== null;
    const refused = this.phase === 'refused';
    this.phase = 'ended';
    this.auth.dispose();
    if (!wasAuthenticated) return;
    this.hooks.unregister(this);
    this.closeTargets();
    const { store, clock, log } = this.deps;
    const closing = this.opened.then(() => this.settled()).then(async () => {
      // Refused by the seat count after the client had gone: there is no row to close.
      if (refused || this.endReason === 'refused') return;
      const row = await store.sessions.close(this.id, this.endReason, this.up, this.down);
      await store.audit.append(draft('session.end', 'system', {
        session: this.id, user: this.identity.user, reason: this.endReason, durationMs: clock.now() - this.started,
        bytesUp: row?.bytesUp ?? this.up, bytesDown: row?.bytesDown ?? this.down,
      }));
    }).catch((err: unknown) => log.error({ err, session: this.id }, 'closing session failed'));
    this.hooks.track(closing);
  }

  private async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Ends the ssh connection itself (server shutdown of a connection that never got live). */
  disconnect(): void {
    this.hangUp();
  }
}

/** The channel-opening handlers (proxy/channels and proxy/jump), given to each connection. */
export interface ChannelHandlers {
  session(channel: import('ssh2').Session, conn: OperatorConnection): void;
  tcpip(accept: () => ServerChannel, reject: () => void, info: import('ssh2').TcpipRequestInfo, conn: OperatorConnection): void;
  refused(reject: () => void, message: string): void;
}
