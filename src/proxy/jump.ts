import net from 'node:net';
import ssh2, { type AuthContext, type ServerChannel, type TcpipRequestInfo } from 'ssh2';
import { draft } from '../audit/events.js';
import { authorize, maySsh, reachableTargets, type Grant } from '../auth/policy.js';
import { fingerprintOf, verifySignature } from '../auth/sshkey.js';
import type { HostRecord } from '../store/types.js';
import { SERVER_ALGORITHMS } from './algorithms.js';
import { handleSessionChannel, type ChannelDeps } from './channels.js';
import type { LiveConnection } from './live.js';
import { OPEN_FAILURE, rejectWith } from './reject.js';
import { findHost } from './target.js';
import { targetHostKey } from './targetkeys.js';

/**
 * `direct-tcpip` channels. To a known host's SSH port it is `ssh -J`: gatehouse terminates the
 * inner SSH connection itself, presenting the host key it keeps for that target and accepting only
 * the key the operator used on the outer connection (both factors were proven there), and relays
 * every inner channel through the same handler, policy and recorder as the direct path. To any
 * other port it is a port forward, which needs the `forward` right on that host.
 */
export interface JumpDeps extends ChannelDeps {
  ident: string;
}

type Accept = () => ServerChannel;

export function handleDirectTcpip(accept: Accept, reject: () => void, info: TcpipRequestInfo, live: LiveConnection, deps: JumpDeps, innerLogin?: string): void {
  route(accept, reject, info, live, deps, innerLogin).catch((err: unknown) => {
    deps.log.error({ err, session: live.id }, 'direct-tcpip failed');
    rejectWith(reject, OPEN_FAILURE.CONNECT_FAILED, 'internal error');
  });
}

async function route(accept: Accept, reject: () => void, info: TcpipRequestInfo, live: LiveConnection, deps: JumpDeps, innerLogin?: string): Promise<void> {
  const { store, clock } = deps;
  const user = live.identity.user;
  const deny = async (host: string, reason: string, message: string, action: string) => {
    await store.audit.append(draft('access.denied', 'system', { user, source: live.source, host, login: innerLogin ?? '', action, reason, session: live.id }));
    rejectWith(reject, OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, message);
  };
  const host = findHost(await store.hosts.list(), info.destIP);
  if (!host) return deny(info.destIP, 'unknown_host', `gatehouse: unknown host "${info.destIP}"`, innerLogin ? 'forward' : 'jump');
  const record = await store.users.get(user);
  if (!record) return deny(host.name, 'user_removed', 'gatehouse: access denied', 'jump');
  const grants = await store.grants.list();
  const now = clock.now();
  const isSsh = innerLogin === undefined && (info.destPort === 22 || info.destPort === host.port);

  if (isSsh) {
    if (!maySsh(record, host, grants, now)) return deny(host.name, 'no_grant', `gatehouse: no grant gives ${user} access to ${host.name}`, 'jump');
    startInner(accept(), host, live, deps);
    return;
  }
  // From inside a -J connection, a forward to an SSH port would carry an SSH session gatehouse
  // cannot see (a nested `-J bastion,other`): refused, so no session is ever unrecorded.
  if (innerLogin !== undefined && (info.destPort === 22 || info.destPort === host.port)) {
    return deny(host.name, 'nested_jump', 'gatehouse: a jump through a jump is refused; use gatehouse as the only ProxyJump (ssh -J bastion HOST)', 'forward');
  }
  // A port forward: the destination must be a granted host, with the forward right.
  let grant: Grant | null = null;
  if (innerLogin !== undefined) {
    const d = authorize({ user: record, host, login: innerLogin, action: 'forward' }, grants, now);
    if (d.allow) grant = d.grant;
  } else {
    grant = reachableTargets(record, [host], grants, 'forward', now)[0]?.grant ?? null;
  }
  if (!grant) return deny(host.name, 'right_not_granted', `gatehouse: port forwarding to ${host.name} needs the forward right`, 'forward');
  forward(accept(), grant, host, info.destPort, live, deps);
}

function forward(ch: ServerChannel, grant: Grant, host: HostRecord, port: number, live: LiveConnection, deps: JumpDeps): void {
  const { store } = deps;
  const user = live.identity.user;
  const channel = live.channelNumber();
  const sock = net.connect(port, host.address);
  let up = 0;
  let downBytes = 0;
  ch.on('data', (d: Buffer) => { up += d.length; live.lastActivity = deps.clock.now(); });
  sock.on('data', (d: Buffer) => { downBytes += d.length; live.lastActivity = deps.clock.now(); });
  ch.pipe(sock).pipe(ch);
  const end = () => { sock.destroy(); ch.destroy(); };
  ch.on('error', end);
  sock.on('error', end);
  live.channels.set(channel, { channel, grant, action: 'forward', tty: false, end, notify: () => undefined });
  deps.onChannel?.(live, grant);
  void store.audit.append(draft('forward.open', 'system', { session: live.id, user, host: host.name, port, login: grant.login, grant: grant.grantId }));
  let closed = false;
  const done = () => {
    if (closed) return;
    closed = true;
    live.channels.delete(channel);
    live.track(store.audit.append(draft('forward.close', 'system', { session: live.id, user, host: host.name, port, bytesUp: up, bytesDown: downBytes })));
  };
  ch.on('close', done);
  sock.on('close', () => { ch.end(); done(); });
}

function startInner(channel: ServerChannel, host: HostRecord, live: LiveConnection, deps: JumpDeps): void {
  const { store, log } = deps;
  const key = targetHostKey(deps.targetKeysDir, host.id);
  const inner = new ssh2.Server({ hostKeys: [key.privateKey], algorithms: SERVER_ALGORITHMS, ident: deps.ident }, (conn) => {
    let login: string | null = null;
    conn.on('authentication', (ctx: AuthContext) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      const fp = fingerprintOf(ctx.key.data);
      if (fp !== live.identity.fingerprint) {
        void store.audit.append(draft('auth.failure', 'system', { user: live.identity.user, source: live.source, reason: 'inner_key_mismatch', key: fp }));
        return ctx.reject(['publickey']);
      }
      if (!ctx.signature || !ctx.blob) return ctx.accept();
      void store.keys.byFingerprint(fp).then((k) => {
        if (!k || !verifySignature(k.publicKey, ctx)) return ctx.reject(['publickey']);
        login = ctx.username;
        ctx.accept();
      });
    });
    conn.on('ready', () => {
      const fixed = { login: login!, host: host.name };
      conn.on('session', (accept) => handleSessionChannel(accept(), live, deps, fixed));
      conn.on('tcpip', (accept, reject, info) => handleDirectTcpip(accept, reject, info, live, deps, fixed.login));
      conn.on('openssh.streamlocal', (_a, reject) => rejectWith(reject, OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, 'unix socket forwarding is refused'));
      conn.on('request', (_a, reject) => reject?.());
    });
    conn.on('error', (err) => log.debug({ err: err.message, session: live.id }, 'inner connection error'));
  });
  inner.on('error', () => undefined);
  const closeInner = live.onClose(() => channel.destroy());
  channel.on('close', closeInner);
  channel.on('error', () => undefined);
  inner.injectSocket(channel as never);
}
