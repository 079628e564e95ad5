import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { freePort } from '../helpers/proc.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { ssh2Login } from '../helpers/ssh2login.js';
import ssh2 from 'ssh2';
import { Tmux, shellQuote } from '../helpers/tmux.js';
import { runSsh, runSshUntil, startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

type AuditRow = { type: string; data: Record<string, unknown> };
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe.runIf(haveOpenSsh())('ssh -J (ProxyJump) through gatehouse', () => {
  let w: World;
  let alice: Operator;
  let cfg: string;
  let echoPort: number;
  let echo: net.Server;
  const files = tempDir('gatehouse-jump-');

  const run = (op: Operator, config: string, cmd: string, args: string[], input?: string, timeoutMs = 60_000): Promise<SshResult> => {
    const env = w.sshCommand(op, []).env;
    return runSsh(cmd === 'ssh' || cmd === 'scp' || cmd === 'sftp' ? ['-F', config, ...args] : args, env, input, timeoutMs, cmd);
  };

  const lastChannels = (n: number) => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).slice(-n).map((e) => e.data);

  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
    ghOk(w.data, ['host', 'add', 'target2', '--address', '127.0.0.1', '--port', String(w.sshd.port), '--host-key', w.sshd.hostKey]);
    cfg = w.jumpConfig(alice, ['target1', 'target2', 'nowhere']);
    echoPort = await freePort();
    echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(echoPort, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    echo?.close();
    await w?.stop();
  });

  it('known-hosts: the CLI and `ssh bastion known-hosts` print the same lines', async () => {
    const mine = await run(alice, cfg, 'ssh', ['bastion', 'known-hosts']);
    expect(mine.code).toBe(0);
    expect(mine.stdout.trim()).toBe(ghOk(w.data, ['known-hosts', 'alice']).trim());
    expect(mine.stdout).toMatch(/^target1 ssh-ed25519 AAAA\S+\n\[target1\]:\d+ ssh-ed25519 /);
    expect(mine.stdout).not.toContain('target2'); // alice may not reach it
  });

  it('exec over -J: stdout, stderr and exit status pass through; recorded and audited', async () => {
    const r = await run(alice, cfg, 'ssh', ['target1', 'echo out; echo err >&2; exit 5']);
    expect(r).toMatchObject({ code: 5, stdout: 'out\n', stderr: 'err\n' });
    const ch = lastChannels(1)[0]!;
    expect(ch).toMatchObject({ user: 'alice', host: 'target1', login: w.login, kind: 'exec', command: 'echo out; echo err >&2; exit 5' });
    const sid = ch.session as string;
    await expect.poll(() => ghJson<{ recordings: unknown[] }>(w.data, ['sessions', 'show', sid]).recordings.length).toBe(1);
    await expect.poll(() => ghJson<{ ok: boolean }>(w.data, ['verify', sid]).ok).toBe(true);
  });

  it('scp -J up and down, 20 MB, in SFTP mode and in legacy (-O) mode', async () => {
    const src = path.join(files, 'src.bin');
    fs.writeFileSync(src, randomBytes(20 * 1024 * 1024));
    const remote = path.join(files, 'remote');
    fs.mkdirSync(remote);
    for (const mode of [[], ['-O']]) {
      const tag = mode.length ? 'legacy' : 'sftp';
      const up = await run(alice, cfg, 'scp', [...mode, '-q', src, `target1:${remote}/up-${tag}.bin`]);
      expect(up.code, up.stderr).toBe(0);
      const back = path.join(files, `back-${tag}.bin`);
      const down = await run(alice, cfg, 'scp', [...mode, '-q', `target1:${remote}/up-${tag}.bin`, back]);
      expect(down.code, down.stderr).toBe(0);
      expect(sha(path.join(remote, `up-${tag}.bin`))).toBe(sha(src));
      expect(sha(back)).toBe(sha(src));
    }
    const kinds = lastChannels(4).map((c) => [c.kind, String(c.command).split(' ').slice(0, 2).join(' ')]);
    expect(kinds).toEqual([['subsystem', 'sftp'], ['subsystem', 'sftp'], ['exec', 'scp -t'], ['exec', 'scp -f']]);
  });

  it('sftp -J batch: put, get, ls, rm', async () => {
    const dir = path.join(files, 'sftp');
    fs.mkdirSync(dir);
    const local = path.join(files, 'hello.txt');
    fs.writeFileSync(local, 'hello over sftp\n');
    const batch = path.join(files, 'batch');
    fs.writeFileSync(batch, [`put ${local} ${dir}/a.txt`, `get ${dir}/a.txt ${files}/got.txt`, `ls ${dir}`, `rm ${dir}/a.txt`, ''].join('\n'));
    const r = await run(alice, cfg, 'sftp', ['-b', batch, 'target1']);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(files, 'got.txt'), 'utf8')).toBe('hello over sftp\n');
    expect(r.stdout).toContain(`${dir}/a.txt`);
    expect(fs.existsSync(path.join(dir, 'a.txt'))).toBe(false);
    expect(lastChannels(1)[0]).toMatchObject({ kind: 'subsystem', command: 'sftp' });
  });

  it('rsync -e "ssh -J …" of a directory', async () => {
    const src = path.join(files, 'tree');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(src, i % 2 ? 'sub' : '', `f${i}`), randomBytes(10_000 + i));
    const dest = path.join(files, 'tree-copy');
    const r = await run(alice, cfg, 'rsync', ['-a', '-e', `ssh -F ${cfg}`, `${src}/`, `target1:${dest}/`]);
    expect(r.code, r.stderr).toBe(0);
    for (let i = 0; i < 20; i++) {
      const rel = path.join(i % 2 ? 'sub' : '', `f${i}`);
      expect(sha(path.join(dest, rel))).toBe(sha(path.join(src, rel)));
    }
    expect(String(lastChannels(1)[0]!.command)).toMatch(/^rsync --server/);
  });

  it('a forward through -J (-W and -L) needs the forward right', async () => {
    const without = await run(alice, cfg, 'ssh', ['-W', `target1:${echoPort}`, 'target1'], 'ping\n');
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/administratively prohibited: gatehouse: port forwarding to target1 needs the forward right/);
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login, '--allow', 'forward']);
    const withRight = await run(alice, cfg, 'ssh', ['-W', `target1:${echoPort}`, 'target1'], 'ping\n');
    expect(withRight.stdout).toBe('ping\n');
    // And -L: a local port on the operator's machine, a round trip through gatehouse to the destination.
    const localPort = await freePort();
    const env = w.sshCommand(alice, []).env;
    const tunnel = spawn('setsid', ['-w', 'ssh', '-F', cfg, '-N', '-o', 'ExitOnForwardFailure=yes', '-L', `127.0.0.1:${localPort}:target1:${echoPort}`, 'target1'], { env, stdio: 'ignore' });
    try {
      const reply = await (async () => {
        for (let i = 0; i < 100; i++) {
          const got = await new Promise<string | null>((resolve) => {
            const c = net.connect(localPort, '127.0.0.1', () => c.end('round-trip\n'));
            let data = '';
            c.on('data', (d) => { data += d.toString(); });
            c.on('close', () => resolve(data || null));
            c.on('error', () => resolve(null));
          });
          if (got) return got;
          await new Promise((r) => setTimeout(r, 100));
        }
        return null;
      })();
      expect(reply).toBe('round-trip\n');
    } finally {
      if (tunnel.pid) process.kill(tunnel.pid, 'SIGTERM');
    }
    await expect.poll(() => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'forward.close']).length).toBe(2);
    const closed = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'forward.close']).map((e) => e.data);
    expect(closed).toEqual([
      expect.objectContaining({ user: 'alice', host: 'target1', port: echoPort, bytesUp: 5, bytesDown: 5 }), // -W "ping\n"
      expect.objectContaining({ user: 'alice', host: 'target1', port: echoPort, bytesUp: 11, bytesDown: 11 }), // -L "round-trip\n"
    ]);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'access.denied']).some((e) => e.data.action === 'forward')).toBe(true);
  });

  it('a jump through a jump (-J bastion,target1) is refused, even with the forward right, so nothing goes unrecorded', async () => {
    // alice holds the forward right on target1 by now (previous test).
    const r = await run(alice, cfg, 'ssh', ['-W', `target1:${w.sshd.port}`, 'target1'], '');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/administratively prohibited: gatehouse: a jump through a jump is refused/);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'access.denied']).at(-1)!.data).toMatchObject({ reason: 'nested_jump', action: 'forward' });
  });

  it('-J to a host that is not granted, or unknown, is refused at the channel open with the reason', async () => {
    const ungranted = await run(alice, cfg, 'ssh', ['target2', 'true']);
    expect(ungranted.code).toBe(255);
    expect(ungranted.stderr).toMatch(/open failed: administratively prohibited: gatehouse: no grant gives alice access to target2/);
    const unknown = await run(alice, cfg, 'ssh', ['nowhere', 'true']);
    expect(unknown.stderr).toMatch(/open failed: administratively prohibited: gatehouse: unknown host "nowhere"/);
    const denied = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'access.denied']).slice(-2).map((e) => [e.data.host, e.data.reason, e.data.action]);
    expect(denied).toEqual([['target2', 'no_grant', 'jump'], ['nowhere', 'unknown_host', 'jump']]);
  });

  it('the inner connection accepts only the key of the outer one', async () => {
    const other = path.join(w.dir, 'id_other');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const otherCfg = path.join(w.dir, 'config-other');
    // The bastion hop uses alice's key; the target hop only another key (IdentityFile lines add up, so no Host *).
    const common = ['  IdentitiesOnly yes', `  UserKnownHostsFile ${path.join(w.dir, 'known_hosts-alice')}`, '  StrictHostKeyChecking yes', '  PreferredAuthentications publickey,keyboard-interactive'];
    fs.writeFileSync(otherCfg, [
      'Host bastion', '  HostName 127.0.0.1', `  Port ${w.port}`, '  User alice', `  IdentityFile ${alice.key}`, ...common,
      'Host target1', '  ProxyJump bastion', `  User ${w.login}`, `  IdentityFile ${other}`, ...common, '',
    ].join('\n'));
    const r = await run(alice, otherCfg, 'ssh', ['target1', 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'auth.failure']).at(-1)!.data).toMatchObject({ user: 'alice', reason: 'inner_key_mismatch' });
  });

  it('an interactive pty shell over -J, with a resize', async () => {
    const t = new Tmux(100, 30);
    try {
      const env = w.sshCommand(alice, []).env;
      t.start(`ssh -F ${shellQuote(cfg)} -t target1`, { SSH_ASKPASS: env.SSH_ASKPASS!, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0', GH_ANSWER: 'totp', GH_TOTP_SECRET: alice.secret, GH_ASKPASS_LOG: '/dev/null' });
      await t.waitFor(/[#$]\s*$/m);
      t.type('stty size\n');
      await t.waitFor(/^30 100$/m);
      t.resize(120, 40);
      await new Promise((r) => setTimeout(r, 300));
      t.type('clear; stty size; exit 3\n');
      await t.waitFor(/^40 120$[\s\S]*EXIT=3/m);
    } finally {
      t.kill();
    }
    expect(lastChannels(1)[0]).toMatchObject({ kind: 'shell', host: 'target1' });
  });

  it('an Ansible ad-hoc command runs through -J', async () => {
    const inv = path.join(w.dir, 'inventory');
    fs.writeFileSync(inv, `target1 ansible_ssh_common_args="-F ${cfg}" ansible_python_interpreter=/usr/bin/python3\n`);
    const env = { ...w.sshCommand(alice, []).env, ANSIBLE_HOST_KEY_CHECKING: 'False', ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCAL_TEMP: path.join(w.dir, 'ansible-tmp'), ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(w.dir, 'ansible-cp') };
    const r = await runSsh(['all', '-i', inv, '-m', 'command', '-a', 'uptime'], env, undefined, 120_000, 'ansible');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/target1 \| CHANGED \| rc=0 >>[\s\S]*load average/);
    const cmds = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).map((e) => String(e.data.command));
    expect(cmds.some((c) => c.includes('AnsiballZ_command.py'))).toBe(true); // the module run, recorded like any exec
  });

  it('revoking the user ends a live -J session', async () => {
    const carol = w.operator('carol');
    ghOk(w.data, ['grant', 'add', '--user', 'carol', '--host', 'target1', '--login', w.login]);
    const carolCfg = w.jumpConfig(carol, ['target1', 'target2', 'nowhere']);
    const { seen, done: running } = runSshUntil(['-F', carolCfg, 'target1', 'echo started; sleep 25'], w.sshCommand(carol, []).env, /^started$/m, 40_000);
    expect(await seen).toBe(true);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel', '--user', 'carol'])).toHaveLength(1);
    ghOk(w.data, ['user', 'disable', 'carol']);
    const r = await running;
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toMatch(/gatehouse: access revoked by an administrator/);
  });

  it('a -J channel whose client sends EOF and nothing else (the ProxyJump helper went away) is closed by gatehouse', async () => {
    const c = await ssh2Login(w.port, alice);
    try {
      const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => c.forwardOut('127.0.0.1', 40000, 'target1', 22, (err, s) => (err ? reject(err) : resolve(s))));
      await new Promise((resolve) => ch.once('data', resolve)); // the inner server's version line
      const closed = new Promise<void>((resolve) => ch.once('close', () => resolve()));
      ch.end(); // EOF, never CLOSE: the inner SSH connection can receive nothing more
      await closed;
    } finally {
      c.end();
    }
  }, 30_000);
});
