import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, ghJson, ghOk, tempDir } from './cli.js';
import { freePort, startProc, type Proc } from './proc.js';
import { LOGIN, startSshd, type Sshd } from './sshd.js';

/**
 * An end-to-end world: a real sshd target, a gatehouse server (the real binary), an operator with
 * an ed25519 key and enrolled TOTP, the target's host key pinned, and the stock OpenSSH client.
 * TOTP codes are computed by oathtool, independently of gatehouse.
 */
export interface Operator {
  name: string;
  key: string;
  secret: string;
}

export interface World {
  data: string;
  dir: string;
  /** The web UI's base URL, http://127.0.0.1:PORT */
  web: string;
  sshd: Sshd;
  gatehouse: Proc;
  port: number;
  login: string;
  knownHosts: string;
  operator(name: string, opts?: { totp?: boolean; roles?: string[] }): Operator;
  ssh(op: Operator, args: string[], opts?: SshOptions): Promise<SshResult>;
  /** The ssh arguments and environment ssh() uses, for tests that drive the client themselves. */
  sshCommand(op: Operator, args: string[], opts?: SshOptions): { args: string[]; env: NodeJS.ProcessEnv };
  /**
   * The ~/.ssh/config an operator would write for `ssh -J`: ProxyJump to the bastion for `hosts`,
   * both hops with the operator's key, the target's and gatehouse's known-hosts lines trusted.
   */
  jumpConfig(op: Operator, hosts?: string[]): string;
  stop(): Promise<void>;
  /** Start gatehouse again on the same data dir and port (after a stop or a kill -9). */
  restart(): Promise<void>;
}

export interface SshOptions {
  /** What the askpass program answers: "totp" (oathtool, default), or a fixed string. */
  answer?: 'totp' | string;
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  extra?: string[];
}

export interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export async function startWorld(opts: { config?: string } = {}): Promise<World> {
  const dir = tempDir('gatehouse-e2e-');
  const data = path.join(dir, 'data');
  // The bastion's client key exists once the data dir does; the target trusts it.
  const clientKey = ghOk(data, ['key', 'show']).trim();
  const sshd = await startSshd([clientKey]);
  ghOk(data, ['host', 'add', 'target1', '--address', '127.0.0.1', '--port', String(sshd.port), '--host-key', sshd.hostKey]);

  const askpass = path.join(dir, 'askpass.sh');
  fs.writeFileSync(askpass, [
    '#!/bin/sh',
    '# Answers the TOTP prompt the way an operator would, computing the code with oathtool.',
    'echo "$1" >> "$GH_ASKPASS_LOG"',
    'if [ "$GH_ANSWER" = "totp" ]; then exec oathtool --totp -b "$GH_TOTP_SECRET"; fi',
    'printf "%s\\n" "$GH_ANSWER"', '',
  ].join('\n'), { mode: 0o755 });

  let port = await freePort();
  let webPort = await freePort();
  // Tests stop their servers with sessions still open: a stop need not wait out the production
  // shutdownGrace (30 s) unless the test sets its own.
  const grace = /^shutdownGrace:/m.test(opts.config ?? '') ? '' : 'shutdownGrace: 1s\n';
  const cfgArgs = ['--config', writeFile(dir, 'gatehouse.yaml', `${grace}${opts.config ?? ''}`)];
  const launch = async () => {
    const p = startProc(process.execPath, [BIN, 'serve', '--data', data, '--ssh-listen', `127.0.0.1:${port}`, '--web-listen', `127.0.0.1:${webPort}`, ...cfgArgs], {
      // A config that names node.workers gets them (test/setup.ts sets one process for the rest).
      env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '', ...(/^\s+workers:/m.test(opts.config ?? '') ? { GATEHOUSE_WORKERS: '' } : {}) },
    });
    // Bounded but generous: on a loaded CI machine (two cores) a start has taken 20 s.
    await p.waitFor(/ssh on 127\.0\.0\.1:\d+/, 60_000);
    return p;
  };
  // freePort cannot reserve a port: another file's process may take it before gatehouse binds it.
  // The first start moves to fresh ports then (bounded); restarts keep theirs.
  let gatehouse: Proc | undefined;
  for (let attempt = 0; gatehouse === undefined; attempt++) {
    try {
      gatehouse = await launch();
    } catch (err) {
      if (attempt >= 2 || !/EADDRINUSE/.test(String(err))) throw err;
      [port, webPort] = [await freePort(), await freePort()];
    }
  }
  const hostPub = execFileSync('ssh-keygen', ['-y', '-f', path.join(data, 'ssh_host_ed25519_key')], { encoding: 'utf8' }).trim();
  const knownHosts = writeFile(dir, 'known_hosts', `[127.0.0.1]:${port} ${hostPub}\n`);

  const world: World = {
    data, dir, sshd, gatehouse, port, login: LOGIN, knownHosts, web: `http://127.0.0.1:${webPort}`,
    operator(name, o = {}) {
      const keyFile = path.join(dir, `id_${name}`);
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile, '-C', name]);
      ghOk(data, ['user', 'add', name, ...(o.roles ?? ['operator']).flatMap((r) => ['--role', r])]);
      ghOk(data, ['user', 'key', 'add', name, `${keyFile}.pub`]);
      const secret = o.totp === false ? '' : ghJson<{ secret: string }>(data, ['user', 'totp', 'enroll', name]).secret;
      return { name, key: keyFile, secret };
    },
    jumpConfig(op, hosts = ['target1']) {
      const knownHosts = path.join(dir, `known_hosts-${op.name}`);
      fs.writeFileSync(knownHosts, fs.readFileSync(world.knownHosts, 'utf8') + ghOk(data, ['known-hosts']));
      const file = path.join(dir, `config-${op.name}`);
      fs.writeFileSync(file, [
        'Host bastion', '  HostName 127.0.0.1', `  Port ${world.port}`, `  User ${op.name}`,
        `Host ${hosts.join(' ')}`, '  ProxyJump bastion', `  User ${world.login}`,
        'Host *', `  IdentityFile ${op.key}`, '  IdentitiesOnly yes', `  UserKnownHostsFile ${knownHosts}`, '  StrictHostKeyChecking yes',
        '  PreferredAuthentications publickey,keyboard-interactive', '  NumberOfPasswordPrompts 1', '',
      ].join('\n'));
      return file;
    },
    sshCommand(op, args, o = {}) {
      const log = path.join(dir, `askpass-${op.name}.log`);
      const sshArgs = [
        '-F', '/dev/null', '-p', String(port), '-i', op.key, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${knownHosts}`,
        '-o', 'StrictHostKeyChecking=yes', '-o', 'PreferredAuthentications=publickey,keyboard-interactive',
        '-o', 'NumberOfPasswordPrompts=1', '-o', 'ConnectTimeout=10', ...(o.extra ?? []),
        `${op.name}@127.0.0.1`, ...args,
      ];
      const env = {
        ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0',
        GH_ANSWER: o.answer ?? 'totp', GH_TOTP_SECRET: op.secret, GH_ASKPASS_LOG: log, ...o.env,
      };
      return { args: sshArgs, env };
    },
    ssh(op, args, o = {}) {
      const c = world.sshCommand(op, args, o);
      return runSsh(c.args, c.env, o.input, o.timeoutMs ?? 30_000);
    },
    async stop() {
      await world.gatehouse.stop();
      await sshd.stop();
    },
    async restart() {
      await world.gatehouse.stop();
      world.gatehouse = await launch();
    },
  };
  return world;
}

function writeFile(dir: string, name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

/**
 * runSsh, and `seen`: true once the client's output has a line matching `line`, false if it ended
 * first. To act (revoke, kill) only once the operator has SEEN the command's first line: the channel's
 * audit row comes before the command has printed anything, so acting on it races the output.
 */
export function runSshUntil(args: string[], env: NodeJS.ProcessEnv, line: RegExp, timeoutMs: number, cmd = 'ssh'): { seen: Promise<boolean>; done: Promise<SshResult> } {
  let settle = (_hit: boolean): void => undefined;
  const seen = new Promise<boolean>((resolve) => { settle = resolve; });
  const done = runSsh(args, env, undefined, timeoutMs, cmd, (soFar) => { if (line.test(soFar)) settle(true); });
  void done.then(() => settle(false));
  return { seen, done };
}

/** Run the stock ssh client with no terminal (setsid), bounded in time; `onStdout` sees the output so far at each read. */
export function runSsh(args: string[], env: NodeJS.ProcessEnv, input: string | undefined, timeoutMs: number, cmd = 'ssh', onStdout?: (soFar: string) => void): Promise<SshResult> {
  return new Promise((resolve) => {
    const child = spawn('setsid', ['-w', cmd, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => { out.push(d); onStdout?.(Buffer.concat(out).toString('utf8')); });
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => { if (child.pid) process.kill(child.pid, 'SIGKILL'); }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes });
    });
    child.stdin.on('error', () => undefined);
    if (input !== undefined) child.stdin.end(input); else child.stdin.end();
  });
}
