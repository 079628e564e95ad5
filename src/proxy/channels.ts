import type { ClientChannel, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import type { Action } from '../auth/policy.js';
import { printable } from '../auth/admit.js';
import type { ChannelObserver } from '../shared/channel.js';
import type { OperatorConnection } from './connection.js';
import { runMenu } from './menu.js';
import { refuse } from './reject.js';
import { isFileTransfer, parseTarget, type TargetRequest } from './target.js';
import { readsOnly } from './transfer.js';
import { knownHostsLines, targetHostKey } from './targetkeys.js';
import { isRequestCommand, runRequestCommand, type RequestCommandDeps } from './request-command.js';
import { isMultiTarget } from '../fleet/targets.js';
import { runMultiHost, type MultiHostDeps } from '../fleet/multihost.js';

/**
 * A session channel from the operator: gather pty/env, then on shell/exec/subsystem choose the
 * target and hand it to the connection (admit → dial → relay). Requests are handled from an
 * explicit allowlist; anything else (agent forwarding, X11, unknown) is refused.
 */
const ENV_ALLOWED = /^(TERM|LANG|LC_[A-Z_]+)$/;
/**
 * Longer than any real exec line; refused before it is parsed, echoed or stored. (ssh2 refuses
 * packets over about 35,000 bytes before we see them; this bounds what fits under that.)
 */
export const MAX_COMMAND = 32 * 1024;
const MAX_ENV = 32;
const MAX_ENV_VALUE = 256;

type Kind = 'shell' | 'exec' | 'subsystem';

export interface SessionChannelOptions {
  targetKeysDir: string;
  /** Derives the target keys that have no file in targetKeysDir (proxy/targetkeys.ts). */
  masterKey: Buffer;
  /** Set for the channels of an inner (`ssh -J`) connection: the target was chosen at the jump. */
  fixed?: { login: string; host: string };
  /** `request LOGIN@HOST …` in command mode (absent: no such command). */
  requests?: RequestCommandDeps;
  /** `LOGIN@H1,H2 CMD` and `LOGIN@group:NAME CMD` in command mode (fleet/multihost.ts; absent: no such form). */
  fleet?: MultiHostDeps;
}

export function handleSessionChannel(session: Session, conn: OperatorConnection, opts: SessionChannelOptions): void {
  let pty: PseudoTtyInfo | null = null;
  const env: Record<string, string> = {};
  let up: ClientChannel | null = null;
  let obs: Required<ChannelObserver> | null = null;
  let begun = false;

  session.on('pty', (accept, reject, info) => {
    if (begun || !validSize(info.cols) || !validSize(info.rows)) return reject?.();
    pty = info;
    accept?.();
  });
  session.on('env', (accept, reject, info) => {
    const ok = ENV_ALLOWED.test(info.key) && typeof info.val === 'string' && info.val.length <= MAX_ENV_VALUE && Object.keys(env).length < MAX_ENV;
    if (ok) { env[info.key] = info.val; accept?.(); } else reject?.();
  });
  session.on('window-change', (accept, reject, info) => {
    if (!validSize(info.cols) || !validSize(info.rows)) return reject?.();
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
    begun = true;
    down.on('error', () => undefined);
    down.stderr.on('error', () => undefined);
    start(kind, down, arg).catch((err: unknown) => {
      conn.logError(err, 'channel failed');
      refuse(down, pty !== null, 'internal error; the administrators can find it in the log', 1);
    });
  };
  session.on('shell', (accept) => begin('shell', null)(accept));
  session.on('exec', (accept, _reject, info) => begin('exec', info.command)(accept));
  session.on('subsystem', (accept, _reject, info) => begin('subsystem', info.name)(accept));

  async function start(request: Kind, down: ServerChannel, arg: string | null): Promise<void> {
    const tty = pty !== null;
    const refusal = await conn.admission();
    if (refusal !== null) return refuse(down, tty, refusal, 1);
    if (arg !== null && arg.length > MAX_COMMAND) return refuse(down, tty, `the command is longer than ${MAX_COMMAND} bytes`, 1);
    let target: TargetRequest;
    if (opts.fixed) {
      if (request === 'subsystem' && arg !== 'sftp') return refuse(down, false, `subsystem "${printable(arg ?? '')}" is not allowed`, 1);
      target = { ...opts.fixed, command: request === 'exec' ? arg : null, ...(request === 'subsystem' ? { subsystem: 'sftp' } : {}) };
    } else if (request === 'exec' && arg?.trim() === 'known-hosts') {
      return knownHosts(down);
    } else if (request === 'exec' && opts.requests && isRequestCommand(arg ?? '')) {
      // Access requests (proxy/request-command.ts); "request" has no "@", so it is never a target.
      return runRequestCommand(down, conn, arg ?? '', opts.requests);
    } else if (request === 'exec' && opts.fleet && isMultiTarget(arg ?? '')) {
      // One command on several hosts: each admitted first (fail closed), then each its own recorded channel.
      return runMultiHost(down, conn, arg ?? '', tty, opts.fleet);
    } else if (request === 'exec') {
      const parsed = parseTarget(arg ?? '');
      if (!parsed.ok) return refuse(down, tty, parsed.message, 1);
      target = parsed.target;
    } else if (request === 'shell') {
      const chosen = await chooseFromMenu(down);
      if (!chosen) return;
      target = chosen;
    } else {
      return refuse(down, false, `subsystem "${printable(arg ?? '')}" needs a target: use ssh -J (ProxyJump) for sftp`, 1);
    }
    const kind: Kind = target.subsystem ? 'subsystem' : target.command === null ? 'shell' : 'exec';
    const action: Action = isFileTransfer(kind, target.command) ? 'sftp' : kind === 'shell' ? 'shell' : 'exec';
    await conn.serve(down, {
      target, kind, action, pty, env, readOnlyOk: action === 'sftp' && readsOnly(kind, target.command),
      started: (u, o) => { up = u; obs = o; },
    });
  }

  /** Operators serve themselves the known_hosts lines `ssh -J` needs: the hosts the gate lets them jump to. */
  async function knownHosts(down: ServerChannel): Promise<void> {
    const reachable = await conn.gate.reachable(conn.identity, 'jump', conn.now());
    const lines = reachable.flatMap((r) => knownHostsLines(r.host, targetHostKey(opts.targetKeysDir, r.host.id, opts.masterKey).publicKey));
    down.write(lines.map((l) => `${l}\n`).join(''), () => { down.exit(0); down.end(); });
  }

  async function chooseFromMenu(down: ServerChannel): Promise<TargetRequest | null> {
    const targets = await conn.gate.reachable(conn.identity, 'shell', conn.now());
    if (targets.length === 0) {
      refuse(down, pty !== null, 'no host is granted to you yet; ask an admin', 1);
      return null;
    }
    if (!pty) {
      const list = targets.map((t) => `  ${t.login}@${t.host.name}`).join('\n');
      refuse(down, false, `choose a target: ssh -t … ${conn.identity.user}@bastion LOGIN@HOST\nyou may reach:\n${list}`, 1);
      return null;
    }
    const currentPty = pty as PseudoTtyInfo;
    const idx = await runMenu(down, conn.identity.user, targets.map((t) => ({ label: `${t.login}@${t.host.name}`, detail: `${t.host.address}:${t.host.port}` })), () => currentPty.rows);
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

/** Terminal sizes a real terminal can have; 0 means "unknown" in SSH. */
function validSize(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 10_000;
}
