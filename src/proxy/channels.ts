import type { ClientChannel, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import { draft } from '../audit/events.js';
import { authorize, reachableTargets, type Action, type Grant } from '../auth/policy.js';
import type { Logger } from '../shared/logger.js';
import type { Clock } from '../shared/clock.js';
import type { Store } from '../store/types.js';
import { DialFailure } from './dialer.js';
import { StreamDigest } from './digest.js';
import type { LiveConnection } from './live.js';
import { runMenu } from './menu.js';
import { fanOut, relayChannel, type ChannelObserver, type ExitInfo } from './relay.js';
import { findHost, isFileTransfer, parseTarget, type TargetRequest } from './target.js';
import { knownHostsFor } from './targetkeys.js';

/**
 * A session channel from the operator: gather pty/env, then on shell/exec/subsystem choose the
 * target, authorize, dial, and relay. Requests are handled from an explicit allowlist; anything
 * else (agent forwarding, X11, unknown) is refused.
 */
export interface ChannelDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  /**
   * Observers for each relayed channel (the recorder plugs in here). May reject: the channel is
   * then refused with the error's message (recording fails closed).
   */
  observers: (ctx: ChannelContext) => Promise<ChannelObserver[]>;
  /** Where the per-target host keys for `ssh -J` live (for `ssh … bastion known-hosts`). */
  targetKeysDir: string;
  /** Called when a channel starts relaying (revocation arms the grant's expiry timer). */
  onChannel?: (live: LiveConnection, grant: Grant) => void;
}

export interface ChannelContext {
  live: LiveConnection;
  channel: number;
  kind: 'shell' | 'exec' | 'subsystem';
  command: string | null;
  host: string;
  login: string;
  pty: PseudoTtyInfo | null;
  /** End the channel now with one line for the operator (e.g. the recording failed). */
  abort(message: string): void;
  /** Keep the session open until this finishes (a recording being finalized). */
  track(p: Promise<unknown>): void;
}

const ENV_ALLOWED = /^(TERM|LANG|LC_[A-Z_]+)$/;

type Kind = ChannelContext['kind'];

/**
 * `fixed` is set for the channels of an inner (`ssh -J`) connection: the target was chosen when the
 * operator opened the jump, so commands run as they are and the sftp subsystem is relayed.
 */
export function handleSessionChannel(session: Session, live: LiveConnection, deps: ChannelDeps, fixed?: { login: string; host: string }): void {
  let pty: PseudoTtyInfo | null = null;
  const env: Record<string, string> = {};
  let up: ClientChannel | null = null;
  let obs: Required<ChannelObserver> | null = null;

  session.on('pty', (accept, _reject, info) => { pty = info; accept?.(); });
  session.on('env', (accept, reject, info) => {
    if (ENV_ALLOWED.test(info.key)) { env[info.key] = info.val; accept?.(); } else reject?.();
  });
  session.on('window-change', (accept, _reject, info) => {
    if (pty) Object.assign(pty, { cols: info.cols, rows: info.rows, width: info.width, height: info.height });
    up?.setWindow(info.rows, info.cols, info.height, info.width);
    obs?.onResize(info.cols, info.rows);
    accept?.();
  });
  session.on('signal', (accept, _reject, info) => { up?.signal(info.name); accept?.(); });
  session.on('auth-agent', (_accept, reject) => reject?.());
  session.on('x11', (_accept, reject) => reject?.());

  // Accept synchronously: ssh2 drops data that arrives before accept() and refuses accept() once
  // the client has sent EOF, which OpenSSH does right after exec for `ssh -n` or empty stdin.
  const begin = (kind: Kind, arg: string | null) => (accept: () => ServerChannel | undefined) => {
    const down = accept();
    if (!down) return;
    down.on('error', () => undefined);
    down.stderr.on('error', () => undefined);
    start(kind, down, arg).catch((err: unknown) => {
      deps.log.error({ err, session: live.id }, 'channel failed');
      refuse(down, pty !== null, 'internal error; the administrators can find it in the log', 1);
    });
  };
  session.on('shell', (accept) => begin('shell', null)(accept));
  session.on('exec', (accept, _reject, info) => begin('exec', info.command)(accept));
  session.on('subsystem', (accept, _reject, info) => begin('subsystem', info.name)(accept));

  async function start(request: Kind, down: ServerChannel, arg: string | null): Promise<void> {
    await live.ready;
    if (live.refusal !== null) return refuse(down, pty !== null, live.refusal, 1);
    let target: TargetRequest;
    if (fixed) {
      if (request === 'subsystem' && arg !== 'sftp') return refuse(down, false, `subsystem "${arg}" is not allowed`, 1);
      target = { ...fixed, command: request === 'exec' ? arg : null, ...(request === 'subsystem' ? { subsystem: 'sftp' } : {}) };
    } else if (request === 'exec' && arg?.trim() === 'known-hosts') {
      // Operators serve themselves the lines `ssh -J` needs.
      const lines = await knownHostsFor(deps.store, deps.targetKeysDir, live.identity.user, deps.clock.now());
      down.write(lines.map((l) => `${l}\n`).join(''), () => { down.exit(0); down.end(); });
      return;
    } else if (request === 'exec') {
      const parsed = parseTarget(arg ?? '');
      if (!parsed.ok) return refuse(down, pty !== null, parsed.message, 1);
      target = parsed.target;
    } else if (request === 'shell') {
      const chosen = await chooseFromMenu(down);
      if (!chosen) return;
      target = chosen;
    } else {
      return refuse(down, false, `subsystem "${arg}" needs a target: use ssh -J (ProxyJump) for sftp`, 1);
    }
    const kind: ChannelContext['kind'] = target.subsystem ? 'subsystem' : target.command === null ? 'shell' : 'exec';
    const action: Action = isFileTransfer(kind, target.command) ? 'sftp' : kind === 'shell' ? 'shell' : 'exec';
    const grant = await authorizeTarget(down, target, action);
    if (!grant) return;

    let client;
    try {
      client = await live.upstream(grant);
    } catch (err) {
      return dialFailed(down, grant, err);
    }
    const channel = live.channelNumber();
    const command = target.subsystem ?? target.command;
    const tty = pty !== null;
    await deps.store.sessions.setTarget(live.id, grant.host, grant.login, grant.grantId);
    await deps.store.sessions.openChannel({ sessionId: live.id, channel, kind, command, pty: tty, host: grant.host, login: grant.login });
    await deps.store.audit.append(draft('session.channel', 'system', {
      session: live.id, user: live.identity.user, channel, kind, host: grant.host, login: grant.login, command, grant: grant.grantId,
    }));

    const digest = new StreamDigest();
    const finishRow = async (exit: ExitInfo | null) => {
      const digests = await digest.digests().catch((err: unknown) => {
        // Only if the hashing thread died: keep the counts, say so in the log.
        deps.log.error({ err, session: live.id, channel }, 'stream hashes unavailable');
        const b = digest.bytes;
        return { stdinBytes: b.stdin, stdoutBytes: b.stdout, stderrBytes: b.stderr, stdinSha256: '', stdoutSha256: '', stderrSha256: '' };
      });
      await deps.store.sessions.closeChannel({ sessionId: live.id, channel, exitStatus: exit?.code ?? null, exitSignal: exit?.signal ?? null, ...digests });
    };
    const cctx: ChannelContext = {
      live, channel, kind, command, host: grant.host, login: grant.login, pty,
      abort: (message) => refuse(down, tty, message, 255),
      track: (p) => live.track(p),
    };
    let extra: ChannelObserver[];
    try {
      extra = await deps.observers(cctx);
    } catch (err) {
      await finishRow(null);
      return refuse(down, tty, err instanceof Error ? err.message : String(err), 1);
    }
    obs = fanOut([
      {
        onInput: (d) => { live.bytesUp += d.length; live.lastActivity = deps.clock.now(); live.idleWarned = false; },
        onOutput: (d) => { live.bytesDown += d.length; live.lastActivity = deps.clock.now(); live.idleWarned = false; },
      },
      digest, ...extra,
    ], (err) => deps.log.error({ err, session: live.id }, 'observer failed'));

    const envOpt = Object.keys(env).length ? env : undefined;
    up = await new Promise<ClientChannel>((resolve, reject) => {
      const cb = (err: Error | undefined, ch: ClientChannel) => (err ? reject(err) : resolve(ch));
      if (target.subsystem) client.subsys(target.subsystem, cb);
      else if (target.command === null) client.shell(pty ?? false, { env: envOpt } as never, cb);
      else client.exec(target.command, { env: envOpt, pty: pty ?? undefined } as never, cb);
    }).catch((err: Error) => {
      const failed: ExitInfo = { code: null, signal: null, coreDumped: false, description: '' };
      obs!.onEnd(failed, 'target_closed');
      finishRow(failed).catch((err: unknown) => deps.log.error({ err, session: live.id }, 'closing the channel row failed'));
      refuse(down, tty, `the target refused the session: ${err.message}`, 1);
      return null;
    });
    if (!up) return;

    const upCh = up;
    const unregister = live.onClose(() => upCh.close());
    const nl = tty ? '\r\n' : '\n';
    live.channels.set(channel, {
      channel, grant, action, tty,
      end: (message) => refuse(down, tty, message, 255),
      notify: (message) => { try { down.stderr.write(`${nl}gatehouse: ${message}${nl}`); } catch { /* closed */ } },
    });
    deps.onChannel?.(live, grant);
    const exit = await relayChannel(down, upCh, obs);
    live.channels.delete(channel);
    unregister();
    await finishRow(exit);
  }

  async function authorizeTarget(down: ServerChannel, target: TargetRequest, action: Action): Promise<Grant | null> {
    const { store, clock } = deps;
    const denied = async (reason: string, message: string) => {
      await store.audit.append(draft('access.denied', 'system', {
        user: live.identity.user, source: live.source, host: target.host, login: target.login, action, reason, session: live.id,
      }));
      refuse(down, pty !== null, message, 1);
      return null;
    };
    const user = await store.users.get(live.identity.user);
    if (!user) return denied('user_removed', 'access denied: your account no longer exists');
    const host = findHost(await store.hosts.list(), target.host);
    if (!host) return denied('unknown_host', `unknown host "${target.host}"`);
    const d = authorize({ user, host, login: target.login, action }, await store.grants.list(), clock.now());
    if (!d.allow) return denied(d.reason, `access denied: ${d.message}`);
    return d.grant;
  }

  async function dialFailed(down: ServerChannel, grant: Grant, err: unknown): Promise<void> {
    const { store } = deps;
    if (err instanceof DialFailure && err.detail.kind === 'host_key_mismatch') {
      await store.audit.append(draft('host.key_mismatch', 'system', {
        host: grant.host, expected: err.detail.expected, presented: err.detail.presented, user: live.identity.user, session: live.id,
      }));
      return refuse(down, pty !== null, `host key of ${grant.host} changed, ask an admin`, 1);
    }
    const message = err instanceof Error ? err.message : String(err);
    await store.audit.append(draft('target.connect_failed', 'system', { host: grant.host, login: grant.login, user: live.identity.user, session: live.id, error: message }));
    refuse(down, pty !== null, err instanceof DialFailure && err.detail.kind === 'not_pinned' ? message : `cannot reach ${grant.host}: ${message}`, 1);
  }

  async function chooseFromMenu(down: ServerChannel): Promise<TargetRequest | null> {
    const { store, clock } = deps;
    const user = await store.users.get(live.identity.user);
    const targets = user ? reachableTargets(user, await store.hosts.list(), await store.grants.list(), 'shell', clock.now()) : [];
    if (targets.length === 0) {
      refuse(down, pty !== null, 'no host is granted to you yet; ask an admin', 1);
      return null;
    }
    if (!pty) {
      const list = targets.map((t) => `  ${t.login}@${t.host.name}`).join('\n');
      refuse(down, false, `choose a target: ssh -t … ${live.identity.user}@bastion LOGIN@HOST\nyou may reach:\n${list}`, 1);
      return null;
    }
    const currentPty = pty as PseudoTtyInfo;
    const idx = await runMenu(down, live.identity.user, targets.map((t) => ({ label: `${t.login}@${t.host.name}`, detail: `${t.host.address}:${t.host.port}` })), () => currentPty.rows);
    if (idx === null) {
      down.exit(0);
      down.end();
      return null;
    }
    const t = targets[idx]!;
    down.write(`connecting to ${t.login}@${t.host.name}…\r\n`);
    return { login: t.login, host: t.host.name, command: null };
  }
}

/** End a channel with one line for the operator and an exit status. */
export function refuse(down: ServerChannel, tty: boolean, message: string, status: number): void {
  const nl = tty ? '\r\n' : '\n';
  const text = `gatehouse: ${message.split('\n').join(nl)}${nl}`;
  try {
    down.stderr.write(text, () => {
      try { down.exit(status); down.end(); } catch { /* already closed */ }
    });
  } catch {
    /* channel already closed */
  }
}
