import { createRequire } from 'node:module';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import ssh2, { type Connection } from 'ssh2';
import { draft } from '../audit/events.js';
import { ConnectionAuth, type AuthDeps } from '../auth/authenticator.js';
import { GatehouseError } from '../shared/errors.js';
import type { Ids } from '../shared/ids.js';
import type { ListenAddress } from '../shared/units.js';
import { SERVER_ALGORITHMS } from './algorithms.js';
import { handleSessionChannel, type ChannelDeps } from './channels.js';
import { LiveConnection } from './live.js';
import { handleDirectTcpip, type JumpDeps } from './jump.js';
import { OPEN_FAILURE, rejectWith } from './reject.js';
import { startPolicyWatcher, type LiveEntry, type PolicyWatcher } from './revocation.js';

/**
 * The SSH listener. One connection's life, in order:
 *   accept → authenticate (auth/authenticator: key, then TOTP; grace timer, attempt limit)
 *          → ready: a session row and session.start
 *          → channels (proxy/channels: choose target → authorize → dial → relay)
 *          → close: upstreams closed, session row closed, session.end
 */
export interface SshServerDeps extends AuthDeps, ChannelDeps {
  ids: Ids;
  hostKey: Buffer;
  clientKey: Buffer;
}

export interface SshServer {
  listen(addr: ListenAddress): Promise<AddressInfo>;
  /** Live operator connections, by session id. */
  readonly live: ReadonlyMap<string, LiveEntry>;
  readonly watcher: PolicyWatcher;
  close(reason: string): Promise<void>;
}

export const SSH_IDENT = 'gatehouse';

function loadCryptoBinding(): { bindingAvailable: boolean } {
  return createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean };
}

/** ssh2 falls back to pure-JS crypto, 6–7× slower, when its native binding did not build. */
export function assertNativeCrypto(binding: { bindingAvailable: boolean } = loadCryptoBinding()): void {
  if (!binding.bindingAvailable) {
    throw new GatehouseError('GH_RUNTIME', "ssh2's native crypto binding is missing (it would run 6-7x slower)", {
      hint: 'install python3, make and g++, then run `npm rebuild ssh2` (its install script must be allowed: see allowScripts in package.json)',
    });
  }
}

export function createSshServer(deps: SshServerDeps): SshServer {
  assertNativeCrypto();
  const { store, log, config, clock } = deps;
  const live = new Map<string, LiveEntry>();
  const watcher = startPolicyWatcher({ store, clock, log, config, grace: deps.grace, entries: () => live.values() });
  const channelDeps: SshServerDeps & JumpDeps = { ...deps, ident: SSH_IDENT, onChannel: (_live, grant) => watcher.armExpiry(grant.until) };
  const sockets = new Set<Connection>();
  const pending = new Set<Promise<void>>();

  const server = new ssh2.Server({ hostKeys: [deps.hostKey], algorithms: SERVER_ALGORITHMS, ident: SSH_IDENT }, (conn, info) => {
    sockets.add(conn);
    const source = info.ip;
    const auth = new ConnectionAuth(deps, source);
    let ended = false;
    auth.onGiveUp = () => conn.end();

    conn.on('authentication', (ctx) => auth.handle(ctx));
    conn.on('error', (err) => log.debug({ err: err.message, source }, 'connection error'));
    conn.on('ready', () => {
      authenticated.add((conn as unknown as { _sock: Socket })._sock);
      const identity = auth.identity!;
      const session = new LiveConnection(deps.ids.sessionId(), identity, source, clock.now(), deps.clientKey);
      let endReason = 'client_closed';
      const entry: LiveEntry = {
        live: session,
        end(reason, message) {
          endReason = reason;
          // Each channel gets the message (stderr, exit 255, close); the connection closes once
          // they have gone, or after a second at most.
          for (const ch of session.channels.values()) ch.end(message);
          let waited = 0;
          const closeWhenDone = setInterval(() => {
            waited += 50;
            if (session.channels.size === 0 || waited >= 1000) {
              clearInterval(closeWhenDone);
              conn.end();
            }
          }, 50);
        },
      };
      live.set(session.id, entry);
      const opened = (async () => {
        const running = await store.sessions.countLive(identity.user);
        if (running >= config.sessions.maxPerUser) {
          session.refusal = `you already have ${running} live sessions (the limit is ${config.sessions.maxPerUser}); end one first`;
          await store.audit.append(draft('session.refused', 'system', { user: identity.user, source, reason: 'max_per_user', live: running, limit: config.sessions.maxPerUser }));
          live.delete(session.id);
          endReason = 'refused';
          return;
        }
        await store.sessions.open({ id: session.id, user: identity.user, keyFingerprint: identity.fingerprint, sourceAddr: source, mode: 'command' });
        await store.audit.append(draft('session.start', 'system', { session: session.id, user: identity.user, source, key: identity.fingerprint }));
      })();
      session.ready = opened;
      conn.on('session', (accept) => handleSessionChannel(accept(), session, channelDeps));
      // ssh -J and -L (direct-tcpip); -R (tcpip-forward) arrives as a global request and is refused below.
      conn.on('tcpip', (accept, reject, info) => handleDirectTcpip(accept, reject, info, session, channelDeps));
      conn.on('openssh.streamlocal', (_accept, reject) => rejectWith(reject, OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, 'unix socket forwarding is refused'));
      conn.on('request', (_accept, reject) => reject?.());
      conn.on('close', () => {
        if (ended) return;
        ended = true;
        live.delete(session.id);
        session.closeUpstreams();
        const closing = opened.then(() => session.settled()).then(async () => {
          if (session.refusal !== null) return;
          const row = await store.sessions.close(session.id, endReason, session.bytesUp, session.bytesDown);
          await store.audit.append(draft('session.end', 'system', {
            session: session.id, user: identity.user, reason: endReason, durationMs: clock.now() - session.startedAt,
            bytesUp: row?.bytesUp ?? session.bytesUp, bytesDown: row?.bytesDown ?? session.bytesDown,
          }));
        }).catch((err: unknown) => log.error({ err, session: session.id }, 'closing session failed'));
        pending.add(closing);
        void closing.finally(() => pending.delete(closing));
      });
    });
    conn.on('close', () => sockets.delete(conn));
  });
  server.on('error', (err: Error) => log.error({ err }, 'ssh server error'));

  // Login grace time from the first TCP byte, not from the SSH ident line (which ssh2 waits for
  // before it tells us about a connection): a socket that never authenticates is closed.
  const authenticated = new WeakSet<Socket>();
  (server as unknown as { _srv: NetServer })._srv.prependListener('connection', (socket: Socket) => {
    const timer = setTimeout(() => {
      if (authenticated.has(socket)) return;
      void store.audit.append(draft('auth.failure', 'system', { user: '', source: socket.remoteAddress ?? '?', reason: 'grace_timeout' }));
      socket.destroy();
    }, config.ssh.loginGraceTime);
    socket.once('close', () => clearTimeout(timer));
  });

  return {
    live,
    watcher,
    listen(addr) {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(new GatehouseError('GH_RUNTIME', `cannot listen on ${addr.host}:${addr.port}: ${err.message}`, {
          hint: 'another process may use the port; change ssh.listen or --ssh-listen',
        }));
        server.once('error', onError);
        server.listen(addr.port, addr.host, () => {
          server.off('error', onError);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async close(reason) {
      watcher.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const e of live.values()) e.end(reason, 'the bastion is shutting down');
        for (const c of sockets) c.end();
        if (sockets.size === 0) resolve();
      });
      // The sessions' end rows and audit events are written before the store closes.
      await Promise.all([...pending]);
    },
  };
}
