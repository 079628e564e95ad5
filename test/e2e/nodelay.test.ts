import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * Keystrokes and echoes are small packets. With Nagle's algorithm (node's default for TCP sockets)
 * a packet waits for the peer's delayed ACK of the one before: under load that was tens of
 * milliseconds on every echo. OpenSSH sets TCP_NODELAY on its interactive connections; so must every
 * socket gatehouse relays on: the operator's, the target's, and a -J forward's.
 *
 * The option is read from gatehouse's own sockets: a copy of each socket descriptor is taken with
 * pidfd_getfd(2) (Linux 5.6; the test runs as root, as CI does) and asked with getsockopt.
 */
const INSPECT = String.raw`
import ctypes, json, os, socket, sys
pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
out = []
for fd in os.listdir('/proc/%d/fd' % pid):
    try:
        if not os.readlink('/proc/%d/fd/%s' % (pid, fd)).startswith('socket:'):
            continue
    except OSError:
        continue
    n = libc.syscall(438, pidfd, int(fd), 0)  # pidfd_getfd
    if n < 0:
        continue
    s = socket.socket(fileno=n)
    try:
        if s.type == socket.SOCK_STREAM and s.family in (socket.AF_INET, socket.AF_INET6):
            try:
                peer = s.getpeername()
            except OSError:
                peer = None
            if peer:
                out.append({'local': s.getsockname()[1], 'peer': peer[1], 'nodelay': s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)})
    finally:
        s.close()  # our copy only: gatehouse's descriptor stays open
print(json.dumps(out))
`;

interface SockInfo { local: number; peer: number; nodelay: number }

/**
 * Whether this machine lets the test read another process's sockets (python3 ≥ 3.9, root or
 * CAP_SYS_PTRACE, pidfd_getfd not filtered): probed on the test's own process. CI runs as root on a
 * plain machine: there a failing probe fails the test instead of skipping it.
 */
function canInspect(): boolean {
  try {
    socketsOf(process.pid);
    return true;
  } catch (err) {
    if (process.env.CI === 'true') throw err;
    return false;
  }
}

function socketsOf(pid: number): SockInfo[] {
  return JSON.parse(execFileSync('python3', ['-c', INSPECT, String(pid)], { encoding: 'utf8' })) as SockInfo[];
}

describe.runIf(haveOpenSsh() && canInspect())('TCP_NODELAY on every relayed socket', () => {
  let w: World;
  let alice: Operator;

  beforeAll(async () => {
    // Several logins in one TOTP step: the grace spares each a fresh code.
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login, '--allow', 'shell,exec,forward']);
  }, 120_000);

  afterAll(async () => { await w?.stop(); });

  /** Runs ssh until the remote command prints `live`, then returns gatehouse's sockets and stops ssh. */
  async function whileLive(args: string[]): Promise<SockInfo[]> {
    const c = w.sshCommand(alice, []);
    // sshCommand's arguments end with the bastion destination; -J tests bring their own config.
    const sshArgs = args[0] === '-F' ? args : [...c.args, ...args];
    const ssh = spawn('ssh', sshArgs, { env: c.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no session within 60 s: ${err}`)), 60_000);
        ssh.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('live')) { clearTimeout(timer); resolve(); } });
        ssh.stderr.on('data', (d: Buffer) => { err += d.toString(); });
        ssh.once('exit', (code) => { clearTimeout(timer); reject(new Error(`ssh exited ${code}: ${err}`)); });
      });
      return socketsOf(w.gatehouse.child.pid!);
    } finally {
      ssh.kill('SIGKILL');
    }
  }

  /** Both hops were found (the operator's connection to gatehouse, gatehouse's to the target) and have the option. */
  function expectNoDelay(socks: SockInfo[]): void {
    const operator = socks.filter((s) => s.local === w.port);
    const target = socks.filter((s) => s.peer === w.sshd.port);
    expect(operator.length).toBeGreaterThan(0);
    expect(target.length).toBeGreaterThan(0);
    expect([...operator, ...target].map((s) => s.nodelay)).not.toContain(0);
  }

  it('command mode: the operator socket and the target socket', async () => {
    expectNoDelay(await whileLive([`${w.login}@target1`, 'echo live; sleep 30']));
  }, 90_000);

  it('-J: the operator socket and the forward to the target', async () => {
    const cfg = w.jumpConfig(alice);
    expectNoDelay(await whileLive(['-F', cfg, 'target1', 'echo live; sleep 30']));
  }, 90_000);
});
