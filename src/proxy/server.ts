import { createRequire } from 'node:module';
import net, { type AddressInfo, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { draft } from '../audit/events.js';
import { GatehouseError } from '../shared/errors.js';
import type { ListenAddress } from '../shared/units.js';
import { SERVER_ALGORITHMS } from './algorithms.js';
import { handleSessionChannel } from './channels.js';
import { OperatorConnection, type ConnectionDeps, type LiveSession } from './connection.js';
import { handleDirectTcpip } from './jump.js';
import { rejectWith, OPEN_FAILURE } from './reject.js';
import { startPolicyWatcher, type PolicyWatcher } from './revocation.js';
import { StartupLimiter } from './startups.js';

/**
 * The SSH listener: accepts TCP connections under the pre-auth limits (ssh.maxStartups,
 * ssh.perSourceMaxStartups) and the login grace timer, hands each to ssh2 and then to an
 * OperatorConnection (proxy/connection.ts), which carries it from authentication to its end.
 * It also keeps the registry of live sessions that revocation, limits and the web UI read.
 */
export interface SshServerDeps extends ConnectionDeps {
  hostKey: Buffer;
  targetKeysDir: string;
}

export interface SshServer {
  listen(addr: ListenAddress): Promise<AddressInfo>;
  /** Live operator sessions, by session id. */
  readonly live: ReadonlyMap<string, LiveSession>;
  readonly watcher: PolicyWatcher;
  /** Accept no new connection (a graceful stop); live ones go on. */
  stopAccepting(): void;
  close(reason: string): Promise<void>;
}

export const SSH_IDENT = 'gatehouse';
const DROP_REPORT_MS = 10_000;

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

/** A TCP connection not yet authenticated: its pre-auth slot and grace timer. */
interface Unauthenticated {
  authenticated(): void;
}

export function createSshServer(deps: SshServerDeps): SshServer {
  assertNativeCrypto();
  const { store, log, config } = deps;
  const live = new Map<string, LiveSession>();
  const connections = new Set<OperatorConnection>();
  const pending = new Set<Promise<unknown>>();
  const watcher = startPolicyWatcher({ store, clock: deps.clock, log, config, grace: deps.grace, gate: deps.gate, entries: () => live.values() });
  const startups = new StartupLimiter({ perSource: config.ssh.perSourceMaxStartups, total: config.ssh.maxStartups });
  // ssh2 reports a connection with its peer's address and port; that pair finds our socket record.
  const unauthenticated = new Map<string, Unauthenticated>();
  const byPeer = new Map<string, Socket>();
  const peer = (ip: string | undefined, port: number | undefined) => `${ip ?? '?'}|${port ?? 0}`;

  const handlers = {
    session: (ch: ssh2.Session, conn: OperatorConnection) => handleSessionChannel(ch, conn, { targetKeysDir: deps.targetKeysDir, masterKey: deps.masterKey, requests: { store, config }, fleet: { store, config } }),
    tcpip: (accept: () => ssh2.ServerChannel, reject: () => void, info: ssh2.TcpipRequestInfo, conn: OperatorConnection) =>
      handleDirectTcpip(accept, reject, info, conn, { store, ident: SSH_IDENT, targetKeysDir: deps.targetKeysDir, masterKey: deps.masterKey }),
    refused: (reject: () => void, message: string) => rejectWith(reject, OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, message),
  };

  const ssh = new ssh2.Server({ hostKeys: [deps.hostKey], algorithms: SERVER_ALGORITHMS, ident: SSH_IDENT }, (conn, info) => {
    const key = peer(info.ip, info.port);
    const socket = byPeer.get(key);
    const c = new OperatorConnection(conn, info.ip, deps, {
      authenticated: () => { unauthenticated.get(key)?.authenticated(); },
      register: (s) => live.set(s.id, s),
      unregister: (s) => { if (live.get(s.id) === s) live.delete(s.id); },
      track: (p) => { pending.add(p); void p.finally(() => pending.delete(p)); },
      relaying: (grant) => watcher.armExpiry(grant.until),
      destroy: () => socket?.destroy(),
    }, handlers);
    connections.add(c);
    conn.on('close', () => connections.delete(c));
    c.accept();
  });
  ssh.on('error', (err: Error) => log.error({ err }, 'ssh server error'));

  let lastDropReport = 0;
  const sockets = new Set<Socket>();
  const tcp = net.createServer((socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const source = socket.remoteAddress ?? '?';
    const release = startups.acquire(source);
    if (!release) {
      // No audit row per refused connection: that would hand a flood a way to fill the log.
      const now = deps.clock.now();
      if (now - lastDropReport >= DROP_REPORT_MS) {
        lastDropReport = now;
        log.warn({ source, dropped: startups.dropped, perSource: config.ssh.perSourceMaxStartups, total: config.ssh.maxStartups }, 'unauthenticated connections over ssh.maxStartups / ssh.perSourceMaxStartups closed');
        startups.dropped = 0;
      }
      socket.destroy();
      return;
    }
    const key = peer(socket.remoteAddress, socket.remotePort);
    byPeer.set(key, socket);
    socket.once('close', () => { if (byPeer.get(key) === socket) byPeer.delete(key); });
    // Login grace time from the first TCP byte, not from the SSH ident line (which ssh2 waits for
    // before it tells us about a connection): a socket that never authenticates is closed.
    const timer = setTimeout(() => {
      void store.audit.append(draft('auth.failure', 'system', { user: '', source, reason: 'grace_timeout' }));
      socket.destroy();
    }, config.ssh.loginGraceTime);
    const done = () => { clearTimeout(timer); release(); unauthenticated.delete(key); };
    unauthenticated.set(key, { authenticated: done });
    socket.once('close', done);
    socket.on('error', () => undefined);
    // Keystrokes and their echoes are small packets: with Nagle's algorithm on (node's default), one
    // waits for the peer's delayed ACK of the one before. OpenSSH sets TCP_NODELAY for the same reason.
    socket.setNoDelay(true);
    ssh.injectSocket(socket);
  });
  tcp.on('error', (err: Error) => log.error({ err }, 'ssh listener error'));

  return {
    live,
    watcher,
    listen(addr) {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(new GatehouseError('GH_RUNTIME', `cannot listen on ${addr.host}:${addr.port}: ${err.message}`, {
          hint: 'another process may use the port; change ssh.listen or --ssh-listen',
        }));
        tcp.once('error', onError);
        tcp.listen(addr.port, addr.host, () => {
          tcp.off('error', onError);
          resolve(tcp.address() as AddressInfo);
        });
      });
    },
    stopAccepting() {
      if (tcp.listening) tcp.close();
    },
    async close(reason) {
      watcher.stop();
      await new Promise<void>((resolve) => {
        tcp.close(() => resolve());
        const ending = new Set<unknown>(live.values());
        for (const s of live.values()) s.end(reason, 'the bastion is shutting down');
        // A live session hangs up by itself once its channels have said why (end() above); hanging
        // up now would race the message. The others have nothing to say.
        for (const c of connections) if (!ending.has(c)) c.disconnect();
        // Connections still before their SSH ident line, or deaf to the goodbye.
        setTimeout(() => { for (const sock of sockets) sock.destroy(); }, 1_500).unref();
      });
      // The sessions' end rows and audit events are written before the store closes.
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}
