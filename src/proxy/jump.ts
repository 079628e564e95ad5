import net from 'node:net';
import ssh2, { type AuthContext, type ServerChannel, type TcpipRequestInfo } from 'ssh2';
import { draft } from '../audit/events.js';
import { printable } from '../auth/admit.js';
import type { Grant } from '../auth/policy.js';
import { proveKey } from '../auth/keyproof.js';
import { fingerprintOf } from '../auth/sshkey.js';
import type { HostRecord, Store } from '../store/types.js';
import { SERVER_ALGORITHMS } from './algorithms.js';
import { handleSessionChannel } from './channels.js';
import type { OperatorConnection } from './connection.js';
import { OPEN_FAILURE, rejectWith } from './reject.js';
import { targetHostKey } from './targetkeys.js';

/**
 * `direct-tcpip` channels. To a known host's SSH port it is `ssh -J`: gatehouse terminates the
 * inner SSH connection itself, presenting the host key it keeps for that target and accepting only
 * the key the operator used on the outer connection (both factors were proven there), and relays
 * every inner channel through the same handler, gate and recorder as the direct path. To any
 * other port it is a port forward, which needs the `forward` right on that host. Both are admitted
 * by the gate, and only on a live session.
 */
export interface JumpOptions {
  store: Store;
  ident: string;
  targetKeysDir: string;
  /** Derives the target keys that have no file in targetKeysDir (proxy/targetkeys.ts). */
  masterKey: Buffer;
  /** Set inside an inner (`ssh -J`) connection: the login the operator named there. */
  innerLogin?: string;
}

type Accept = () => ServerChannel;

/** Longest host name or address a forward may name (DNS names are at most 253 bytes). */
const MAX_DEST = 255;
const CONNECT_TIMEOUT_MS = 15_000;

export function handleDirectTcpip(accept: Accept, reject: () => void, info: TcpipRequestInfo, conn: OperatorConnection, opts: JumpOptions): void {
  route(accept, reject, info, conn, opts).catch((err: unknown) => {
    conn.logError(err, 'direct-tcpip failed');
    rejectWith(reject, OPEN_FAILURE.CONNECT_FAILED, 'internal error');
  });
}

async function route(accept: Accept, reject: () => void, info: TcpipRequestInfo, conn: OperatorConnection, opts: JumpOptions): Promise<void> {
  const prohibited = (message: string) => rejectWith(reject, OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, `gatehouse: ${message}`);
  const refusal = await conn.admission();
  if (refusal !== null) return prohibited(refusal);
  const inner = opts.innerLogin !== undefined;
  const dest = String(info.destIP ?? '');
  const port = info.destPort;
  if (dest.length === 0 || dest.length > MAX_DEST || !Number.isInteger(port) || port < 1 || port > 65535) {
    await conn.deny({ host: printable(dest, MAX_DEST), action: 'forward', kind: 'direct-tcpip' }, 'bad_request', 'bad destination');
    return prohibited(`"${printable(dest)}:${port}" is not a valid destination (a host and a port from 1 to 65535)`);
  }
  const to = await conn.gate.destination(dest, port);
  if (!to) {
    await conn.deny({ host: printable(dest, MAX_DEST), login: opts.innerLogin, action: inner ? 'forward' : 'jump', kind: 'direct-tcpip' }, 'unknown_host', 'unknown host');
    return prohibited(`unknown host "${printable(dest)}"`);
  }
  // The SSH port of this host, or of another host at the same address: either carries an SSH
  // session, which only the jump below (terminated and recorded here) may carry.
  const { host, sshOf } = to;
  if (sshOf && sshOf.id !== host.id) {
    await conn.deny({ host: host.name, login: opts.innerLogin, action: inner ? 'forward' : 'jump', kind: 'direct-tcpip' }, 'bad_request', 'another host\'s SSH port');
    return prohibited(`port ${port} of ${host.name} is the SSH port of ${sshOf.name}: use ssh -J bastion ${sshOf.name}`);
  }
  const toSsh = port === 22 || port === host.port;
  if (toSsh && !inner) {
    const d = await conn.admit({ host: host.name, action: 'jump', kind: 'direct-tcpip' });
    if (!d.allow) return prohibited(d.message);
    return startInner(accept(), host, conn, opts);
  }
  // From inside a -J connection, a forward to an SSH port would carry an SSH session gatehouse
  // cannot see (a nested `-J bastion,other`): refused, so no session is ever unrecorded.
  if (toSsh) {
    await conn.deny({ host: host.name, login: opts.innerLogin, action: 'forward', kind: 'direct-tcpip' }, 'nested_jump', 'nested jump');
    return prohibited('a jump through a jump is refused; use gatehouse as the only ProxyJump (ssh -J bastion HOST)');
  }
  const d = await conn.admit({ host: host.name, login: opts.innerLogin, action: 'forward', kind: 'direct-tcpip' });
  if (!d.allow) return prohibited(d.reason === 'right_not_granted' ? `port forwarding to ${host.name} needs the forward right` : `access denied: ${d.message}`);
  if ((await conn.admission()) !== null) return prohibited('this session is ending');
  forward(accept(), d.grant, host, port, conn, opts.store);
}

/** A port forward: a channel of the live session, seen by revocation, kill and the limits. */
function forward(ch: ServerChannel, grant: Grant, host: HostRecord, port: number, conn: OperatorConnection, store: Store): void {
  const user = conn.identity.user;
  const channel = conn.channelNumber();
  // An ssh -J session runs inside this forward: small packets, no Nagle delay (see server.ts).
  const sock = net.connect({ port, host: host.address, timeout: CONNECT_TIMEOUT_MS, noDelay: true });
  let up = 0;
  let down = 0;
  ch.on('data', (d: Buffer) => { up += d.length; conn.counted(d.length, 0); });
  sock.on('data', (d: Buffer) => { down += d.length; conn.counted(0, d.length); });
  sock.once('connect', () => sock.setTimeout(0));
  sock.once('timeout', () => sock.destroy());
  ch.pipe(sock).pipe(ch);
  const end = () => { sock.destroy(); ch.destroy(); };
  ch.on('error', end);
  sock.on('error', end);
  const unregister = conn.onClose(end);
  conn.addChannel({ channel, grant, action: 'forward', end, notify: () => undefined });
  void store.audit.append(draft('forward.open', 'system', { session: conn.id, user, host: host.name, port, login: grant.login, grant: grant.grantId }));
  let closed = false;
  const done = () => {
    if (closed) return;
    closed = true;
    unregister();
    conn.removeChannel(channel);
    conn.track(store.audit.append(draft('forward.close', 'system', { session: conn.id, user, host: host.name, port, bytesUp: up, bytesDown: down })));
  };
  ch.on('close', () => { sock.destroy(); done(); });
  sock.on('close', () => { ch.end(); done(); });
}

function startInner(channel: ServerChannel, host: HostRecord, conn: OperatorConnection, opts: JumpOptions): void {
  const { store } = opts;
  const key = targetHostKey(opts.targetKeysDir, host.id, opts.masterKey);
  const identity = conn.identity;
  const inner = new ssh2.Server({ hostKeys: [key.privateKey], algorithms: SERVER_ALGORITHMS, ident: opts.ident }, (innerConn) => {
    let login: string | null = null;
    innerConn.on('authentication', (ctx: AuthContext) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      const fp = fingerprintOf(ctx.key.data);
      if (fp !== identity.fingerprint) {
        void store.audit.append(draft('auth.failure', 'system', { user: identity.user, source: conn.source, reason: 'inner_key_mismatch', key: fp }));
        return ctx.reject(['publickey']);
      }
      if (!ctx.signature || !ctx.blob) return ctx.accept();
      // The same proof as the outer login: a security key touches again, with a counter that grows.
      void store.keys.byFingerprint(fp).then(async (k) => {
        const proof = k ? await proveKey(store, k, ctx) : { ok: false as const, reason: 'unknown_key' as const };
        if (!proof.ok) {
          await store.audit.append(draft('auth.failure', 'system', { user: identity.user, source: conn.source, reason: proof.reason, key: fp }));
          return ctx.reject(['publickey']);
        }
        login = ctx.username;
        ctx.accept();
      }).catch((err: unknown) => {
        conn.logError(err, 'inner authentication failed');
        ctx.reject(['publickey']);
      });
    });
    innerConn.on('ready', () => {
      const fixed = { login: login!, host: host.name };
      innerConn.on('session', (accept) => handleSessionChannel(accept(), conn, { targetKeysDir: opts.targetKeysDir, masterKey: opts.masterKey, fixed }));
      innerConn.on('tcpip', (accept, reject, info) => handleDirectTcpip(accept, reject, info, conn, { ...opts, innerLogin: fixed.login }));
      innerConn.on('openssh.streamlocal', (_a, reject) => rejectWith(reject, OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, 'unix socket forwarding is refused'));
      innerConn.on('request', (_a, reject) => reject?.());
    });
    innerConn.on('error', (err) => conn.logDebug({ err: err.message }, 'inner connection error'));
  });
  inner.on('error', () => undefined);
  const closeInner = conn.onClose(() => channel.destroy());
  channel.on('close', closeInner);
  // EOF from the client is the end of the inner SSH connection (nothing can follow it; the ProxyJump
  // helper is gone): close the channel, which ends the inner connection and its channels. Left
  // half-open, a dead -J held its session and recordings open until the outer connection ended.
  channel.once('end', () => channel.close());
  channel.on('error', () => undefined);
  inner.injectSocket(channel as never);
}
