import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, startProc, type Proc } from './proc.js';
import { tempDir } from './cli.js';

export const SSHD = '/usr/sbin/sshd';

/**
 * Whether the OpenSSH server and client are here. In CI (CI=true) their absence is a failure, not a
 * reason to skip: `npm test` installs them.
 */
export function haveOpenSsh(): boolean {
  const ok = fs.existsSync(SSHD) && fs.existsSync('/usr/bin/ssh') && fs.existsSync('/usr/bin/ssh-keygen');
  if (!ok && process.env.CI === 'true') throw new Error('OpenSSH server/client missing: run the README test command (npm test installs them)');
  return ok;
}

export interface Sshd {
  port: number;
  /** "ssh-ed25519 AAAA…" of its host key. */
  hostKey: string;
  dir: string;
  authorizedKeys: string;
  proc: Proc;
  stop(): Promise<void>;
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A real sshd on 127.0.0.1 with its own temporary config, host key and authorized_keys. `config`
 * adds lines (e.g. TrustedUserCAKeys FILE); sshd logs at VERBOSE to its stderr (proc.stderr()).
 */
export async function startSshd(authorizedKeys: string[], opts: { config?: string[] } = {}): Promise<Sshd> {
  const dir = tempDir('gatehouse-sshd-');
  const port = await freePort();
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_ed25519'), '-C', 'target']);
  const ak = path.join(dir, 'authorized_keys');
  fs.writeFileSync(ak, authorizedKeys.join('\n') + '\n', { mode: 0o600 });
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const cfg = path.join(dir, 'sshd_config');
  fs.writeFileSync(cfg, [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${path.join(dir, 'host_ed25519')}`, `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${ak}`, 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes', 'StrictModes no', 'PermitRootLogin yes', 'AcceptEnv LANG LC_*',
    'Subsystem sftp internal-sftp', 'LogLevel VERBOSE', 'MaxStartups 100:30:200', 'MaxSessions 100',
    // bash run by sshd reads ~/.bashrc unless SHLVL says it is nested: the target's commands must not
    // depend on (or queue behind) the test machine's shell setup, e.g. a pyenv rehash lock.
    'SetEnv SHLVL=1', ...(opts.config ?? []), '',
  ].join('\n'));
  const proc = startProc(SSHD, ['-D', '-e', '-f', cfg]);
  await waitForPort(port);
  const hostKey = fs.readFileSync(path.join(dir, 'host_ed25519.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  return { port, hostKey, dir, authorizedKeys: ak, proc, stop: async () => { await proc.stop(); } };
}

export const LOGIN = os.userInfo().username;
