import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureKey, ghJson, ghOk } from '../helpers/cli.js';
import { freePort } from '../helpers/proc.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { Tmux, shellQuote } from '../helpers/tmux.js';
import { codeAfter, stepAt } from '../helpers/totp.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

type AuditRow = { type: string; actor: string; user: string | null; data: Record<string, unknown> };
const audit = (w: World, type: string) => ghJson<AuditRow[]>(w.data, ['audit', '--type', type]);
const oathtool = (secret: string) => execFileSync('oathtool', ['--totp', '-b', secret], { encoding: 'utf8' }).trim();

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe.runIf(haveOpenSsh())('operator path: ssh → gatehouse → sshd', () => {
  let w: World;
  let alice: Operator;
  let target: string;
  beforeAll(async () => {
    // mfaGrace lets one operator run many connections in these tests without waiting for a new TOTP step.
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    alice = w.operator('alice');
    target = `${w.login}@target1`;
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
  });
  afterAll(async () => { await w?.stop(); });

  it('exec: stdout, stderr and a non-zero exit status pass through, and are audited', async () => {
    const r = await w.ssh(alice, [target, 'echo out; echo err >&2; exit 7']);
    expect(r).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
    expect(fs.readFileSync(path.join(w.dir, 'askpass-alice.log'), 'utf8')).toContain('Verification code:');
    const success = audit(w, 'auth.success').at(-1)!;
    expect(success.data).toMatchObject({ user: 'alice', source: '127.0.0.1' });
    const channel = audit(w, 'session.channel').at(-1)!;
    expect(channel.data).toMatchObject({ user: 'alice', host: 'target1', login: w.login, kind: 'exec', command: 'echo out; echo err >&2; exit 7' });
    const sid = channel.data.session as string;
    await expect.poll(() => ghJson<{ endedAt: string | null }>(w.data, ['sessions', 'show', sid]).endedAt).not.toBeNull();
    const s = ghJson<{ user: string; host: string; login: string; channels: { exitStatus: number; stdoutBytes: number; stderrBytes: number }[] }>(w.data, ['sessions', 'show', sid]);
    expect(s).toMatchObject({ user: 'alice', host: 'target1', login: w.login });
    expect(s.channels[0]).toMatchObject({ exitStatus: 7, stdoutBytes: 4, stderrBytes: 4 });
    expect(audit(w, 'session.end').some((e) => e.data.session === sid)).toBe(true);
  });

  it('stdin reaches the target and half-close keeps the exit status', async () => {
    const r = await w.ssh(alice, [target, 'cat > /dev/null; wc -c < /dev/stdin; echo done; exit 4'], { input: 'hello world\n' });
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('done');
    const upload = await w.ssh(alice, [target, 'sha256sum'], { input: 'x'.repeat(3 * 1024 * 1024) });
    expect(upload.stdout.split(' ')[0]).toBe(execFileSync('sha256sum', { input: 'x'.repeat(3 * 1024 * 1024), encoding: 'utf8' }).split(' ')[0]);
  });

  it('large interleaved stdout and stderr arrive complete and separate (ssh2 window patch)', async () => {
    const r = await w.ssh(alice, [target, 'for i in 1 2 3; do head -c 3000000 /dev/zero | tr "\\0" e >&2; head -c 3000000 /dev/zero | tr "\\0" o; done']);
    expect(r.code).toBe(0);
    expect(r.stdoutBytes.length).toBe(9_000_000);
    expect(Buffer.byteLength(r.stderr)).toBe(9_000_000);
    expect(/^o+$/.test(r.stdout)).toBe(true);
    expect(/^e+$/.test(r.stderr)).toBe(true);
  });

  it('a signal exit is relayed (OpenSSH reports 255) and recorded', async () => {
    const r = await w.ssh(alice, [target, 'kill -TERM $$']);
    expect(r.code).toBe(255);
    const sid = audit(w, 'session.channel').at(-1)!.data.session as string;
    await expect.poll(() => ghJson<{ channels: { exitSignal: string | null }[] }>(w.data, ['sessions', 'show', sid]).channels[0]?.exitSignal).toBe('TERM');
  });

  it('malformed target, unknown host and unknown login: one line, exit 1, audited', async () => {
    const bad = await w.ssh(alice, ['justaword']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^gatehouse: "justaword" is not LOGIN@HOST/);
    const unknown = await w.ssh(alice, [`${w.login}@nowhere`, 'true']);
    expect(unknown).toMatchObject({ code: 1, stderr: 'gatehouse: unknown host "nowhere"\n' });
    const login = await w.ssh(alice, ['nobody@target1', 'true']);
    expect(login.code).toBe(1);
    expect(login.stderr).toBe('gatehouse: access denied: alice may not log in to target1 as nobody\n');
    const denied = audit(w, 'access.denied').slice(-2).map((e) => [e.data.host, e.data.reason]);
    expect(denied).toEqual([['nowhere', 'unknown_host'], ['target1', 'login_not_granted']]);
  });

  it('no grant, expired grant and right not granted are refused', async () => {
    const bob = w.operator('bob');
    const none = await w.ssh(bob, [target, 'true']);
    expect(none).toMatchObject({ code: 1, stderr: 'gatehouse: access denied: no grant gives bob access to target1\n' });
    const short = ghJson<{ until: string }>(w.data, ['grant', 'add', '--user', 'bob', '--host', 'target1', '--login', w.login, '--for', '1s']);
    // Until the grant's own end (the CLI's start-up already spent part of its second), not a fixed sleep.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(short.until) + 200 - Date.now())));
    const expired = await w.ssh(bob, [target, 'true']);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/has expired/);
    ghOk(w.data, ['grant', 'add', '--user', 'bob', '--host', 'target1', '--login', w.login, '--allow', 'exec']);
    expect((await w.ssh(bob, [target, 'echo ok'])).stdout).toBe('ok\n');
    const shell = await w.ssh(bob, [target]);
    expect(shell.stderr).toMatch(/not use shell/);
    const reasons = audit(w, 'access.denied').filter((e) => e.data.user === 'bob').map((e) => e.data.reason);
    expect(reasons).toEqual(['no_grant', 'grant_expired', 'right_not_granted']);
  });

  it('a changed target host key is refused and audited', async () => {
    ghOk(w.data, ['host', 'add', 'target2', '--address', '127.0.0.1', '--port', String(w.sshd.port), '--host-key', fixtureKey('ed25519').split(' ').slice(0, 2).join(' ')]);
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target2', '--login', w.login]);
    const r = await w.ssh(alice, [`${w.login}@target2`, 'echo should-not-run']);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe('gatehouse: host key of target2 changed, ask an admin\n');
    const m = audit(w, 'host.key_mismatch').at(-1)!;
    expect(m.data).toMatchObject({ host: 'target2', expected: 'SHA256:XecLrmgQDbeGrAzmKxGBl2huaQPljA10DpTmIXg9CQU' });
    expect(m.data.presented).toBe(ghJson<{ hostKeyFingerprint: string }>(w.data, ['host', 'show', 'target1']).hostKeyFingerprint);
  });

  it('a dead target: one line for the operator, exit 1, target.connect_failed audited', async () => {
    const port = await freePort(); // nothing listens there
    ghOk(w.data, ['host', 'add', 'zdead1', '--address', '127.0.0.1', '--port', String(port), '--host-key', w.sshd.hostKey]);
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'zdead1', '--login', w.login]);
    const r = await w.ssh(alice, [`${w.login}@zdead1`, 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^gatehouse: cannot reach zdead1: .*ECONNREFUSED/);
    expect(audit(w, 'target.connect_failed').at(-1)!.data).toMatchObject({ host: 'zdead1', user: 'alice', login: w.login });
  });

  it('a disabled user is refused at login', async () => {
    const carol = w.operator('carol');
    ghOk(w.data, ['grant', 'add', '--user', 'carol', '--host', 'target1', '--login', w.login]);
    ghOk(w.data, ['user', 'disable', 'carol']);
    const r = await w.ssh(carol, [target, 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied/);
    expect(audit(w, 'auth.failure').filter((e) => e.data.user === 'carol').map((e) => e.data.reason)).toContain('user_disabled');
  });

  it('an unknown key is refused', async () => {
    const mallory: Operator = { name: 'alice', key: path.join(w.dir, 'id_mallory'), secret: alice.secret };
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', mallory.key]);
    const r = await w.ssh(mallory, [target, 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
    expect(audit(w, 'auth.failure').at(-1)!.data).toMatchObject({ user: 'alice', reason: 'unknown_key' });
  });

  it('an interactive shell under a pty: resize reaches the target, exit status returns', async () => {
    const t = new Tmux(100, 30);
    try {
      const args = ['-F', '/dev/null', '-p', String(w.port), '-i', alice.key, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${w.knownHosts}`, '-t', `alice@127.0.0.1`, target];
      t.start(`ssh ${args.map(shellQuote).join(' ')}`, { SSH_ASKPASS: '/bin/false', SSH_ASKPASS_REQUIRE: 'never' });
      await t.waitFor(/[#$]\s*$/m);
      t.type('stty size\n');
      await t.waitFor(/^30 100$/m);
      t.resize(132, 50);
      await new Promise((r) => setTimeout(r, 300));
      t.type('clear; stty size\n');
      await t.waitFor(/^50 132$/m);
      t.type('echo $TERM; exit 5\n');
      const screen = await t.waitFor(/EXIT=5/);
      expect(screen).toMatch(/tmux|screen|xterm/);
    } finally {
      t.kill();
    }
    const sid = audit(w, 'session.channel').at(-1)!.data.session as string;
    const s = ghJson<{ channels: { kind: string; pty: boolean; exitStatus: number }[] }>(w.data, ['sessions', 'show', sid]);
    expect(s.channels[0]).toMatchObject({ kind: 'shell', pty: true });
  });

  it('the menu lists the reachable targets; Enter connects; q quits cleanly', async () => {
    const t = new Tmux(80, 24);
    const args = ['-F', '/dev/null', '-p', String(w.port), '-i', alice.key, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${w.knownHosts}`, '-t', `alice@127.0.0.1`];
    try {
      t.start(`ssh ${args.map(shellQuote).join(' ')}`, { SSH_ASKPASS: '/bin/false', SSH_ASKPASS_REQUIRE: 'never' });
      const menu = await t.waitFor(/choose a target/);
      expect(menu).toContain(`${w.login}@target1`);
      expect(menu).toContain(`${w.login}@target2`);
      t.keys('Down', 'Up', 'Enter');
      await t.waitFor(/[#$]\s*$/m);
      t.type('echo MENU_$((40+2)); exit\n');
      await t.waitFor(/MENU_42[\s\S]*EXIT=0/);
    } finally {
      t.kill();
    }
    const quit = new Tmux(80, 24);
    try {
      quit.start(`ssh ${args.map(shellQuote).join(' ')}`, { SSH_ASKPASS: '/bin/false', SSH_ASKPASS_REQUIRE: 'never' });
      await quit.waitFor(/choose a target/);
      quit.keys('q');
      const s = await quit.waitFor(/EXIT=0/);
      expect(s).not.toMatch(/error|Traceback|at .*\.js/i);
    } finally {
      quit.kill();
    }
  });

  it('agent forwarding, X11 forwarding, remote forwarding (-R) and port forwarding are refused', async () => {
    const sock = path.join(w.dir, 'agent.sock');
    const agent = execFileSync('ssh-agent', ['-a', sock, '-s'], { encoding: 'utf8' });
    const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent)![1]);
    try {
      const r = await w.ssh(alice, [target, 'echo "A=${SSH_AUTH_SOCK:-none}"'], { extra: ['-o', 'ForwardAgent=yes'], env: { SSH_AUTH_SOCK: sock } });
      expect(r.stdout).toBe('A=none\n');
    } finally {
      process.kill(agentPid, 'SIGTERM');
    }
    // X11 (x11-req) is refused: OpenSSH says so, and no DISPLAY reaches the target.
    const x11 = await w.ssh(alice, [target, 'echo "D=${DISPLAY:-none}"'], { extra: ['-Y', '-o', 'ForwardX11Timeout=0'], env: { DISPLAY: ':55' } });
    expect(x11.stderr).toMatch(/X11 forwarding request failed/);
    expect(x11.stdout).toBe('D=none\n');
    // -R (tcpip-forward) is refused: OpenSSH says so and, with ExitOnForwardFailure, gives up.
    const remote = await w.ssh(alice, [target, 'echo should-not-run'], { extra: ['-o', 'ExitOnForwardFailure=yes', '-R', '127.0.0.1:0:127.0.0.1:22'] });
    expect(remote.code).toBe(255);
    expect(remote.stderr).toMatch(/remote port forwarding failed/);
    expect(remote.stdout).toBe('');
    const fwd = await w.ssh(alice, [], { extra: ['-W', `127.0.0.1:${w.sshd.port}`] });
    expect(fwd.code).toBe(255);
    // 127.0.0.1 is the address of two hosts here, so it names none of them.
    expect(fwd.stderr).toMatch(/open failed: administratively prohibited: gatehouse: unknown host "127.0.0.1"/);
  });

  it('ControlMaster: one authenticated connection carries several sessions, each recorded', async () => {
    const dan = w.operator('dan');
    ghOk(w.data, ['grant', 'add', '--user', 'dan', '--host', 'target1', '--login', w.login]);
    const ctl = path.join(w.dir, 'cm-dan');
    const master = w.sshCommand(dan, [], { extra: ['-o', 'ControlMaster=yes', '-o', `ControlPath=${ctl}`, '-N'] });
    const m = spawn('setsid', ['-w', 'ssh', ...master.args], { env: master.env, stdio: 'ignore' });
    try {
      await expect.poll(() => fs.existsSync(ctl), { timeout: 15_000 }).toBe(true);
      const mux = (cmd: string) => w.ssh(dan, [target, cmd], { extra: ['-o', `ControlPath=${ctl}`], answer: 'no-code-needed' });
      const [a, b] = await Promise.all([mux('echo one'), mux('echo two; exit 3')]);
      expect(a).toMatchObject({ code: 0, stdout: 'one\n' });
      expect(b).toMatchObject({ code: 3, stdout: 'two\n' });
      expect(audit(w, 'auth.success').filter((e) => e.data.user === 'dan')).toHaveLength(1);
      const channels = audit(w, 'session.channel').filter((e) => e.data.user === 'dan');
      expect(new Set(channels.map((e) => e.data.session)).size).toBe(1);
      expect(channels.map((e) => e.data.command).sort()).toEqual(['echo one', 'echo two; exit 3']);
    } finally {
      if (m.pid) process.kill(m.pid, 'SIGTERM');
    }
  });

  it('without a pty and a command, the operator gets the list of targets and exit 1', async () => {
    const r = await w.ssh(alice, [], { input: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${w.login}@target1`);
  });

  it('1 GiB to a client that reads slowly: gatehouse memory stays bounded', async () => {
    const pid = w.gatehouse.child.pid!;
    const cmd = w.sshCommand(alice, [target, 'head -c 1073741824 /dev/zero']);
    const child = spawn('setsid', ['-w', 'ssh', ...cmd.args], { stdio: ['ignore', 'pipe', 'pipe'], env: cmd.env });
    let bytes = 0;
    // What would show a missing backpressure: growth while the reader stalls (the target keeps
    // writing at full speed; without the windows gatehouse would hold all of it). While it drains
    // as fast as it can, RSS also holds garbage not yet collected (about 250 MiB alone, 316 MiB once
    // in a loaded CI run): that phase is bounded well under the 1 GiB that passes.
    const base = rssKiB(pid);
    let peak = 0;
    let stallPeak = 0;
    let stalled = false;
    const sampler = setInterval(() => {
      const r = rssKiB(pid);
      peak = Math.max(peak, r);
      if (stalled) stallPeak = Math.max(stallPeak, r);
    }, 100);
    // Stall the reader for 8 s once data flows, then drain as fast as possible.
    child.stdout.once('data', () => {
      child.stdout.pause();
      stalled = true;
      setTimeout(() => { stalled = false; child.stdout.resume(); }, 8000);
    });
    child.stdout.on('data', (d: Buffer) => { bytes += d.length; });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
      child.on('close', (c) => { clearTimeout(timer); resolve(c); });
    });
    clearInterval(sampler);
    const mib = (k: number) => `${(k / 1024).toFixed(0)} MiB`;
    console.log(`1 GiB via gatehouse to a stalled reader: gatehouse RSS ${mib(base)} before, ${mib(stallPeak)} at most while stalled, ${mib(peak)} at most in all`);
    expect(code).toBe(0);
    expect(bytes).toBe(1073741824);
    expect(stallPeak - base).toBeLessThan(128 * 1024);
    expect(peak).toBeLessThan(512 * 1024);
  }, 180_000);
});

describe.runIf(haveOpenSsh())('operator authentication: TOTP, replay, lockout, limits', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ config: 'ssh:\n  loginGraceTime: 2s\nauth:\n  lockout: { failures: 3, window: 10m, duration: 15m }\n' });
  });
  afterAll(async () => { await w?.stop(); });

  const grantFor = (op: Operator) => ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target1', '--login', w.login]);

  it('a wrong code is refused and audited', async () => {
    const dan = w.operator('dan');
    grantFor(dan);
    const r = await w.ssh(dan, [`${w.login}@target1`, 'true'], { answer: '000000' });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied/);
    expect(audit(w, 'auth.failure').filter((e) => e.data.user === 'dan').map((e) => e.data.reason)).toEqual(['wrong_code']);
  });

  it('a code is accepted once: the same code on a second connection is refused', async () => {
    const erin = w.operator('erin');
    grantFor(erin);
    const code = oathtool(erin.secret);
    expect((await w.ssh(erin, [`${w.login}@target1`, 'echo first'], { answer: code })).stdout).toBe('first\n');
    const again = await w.ssh(erin, [`${w.login}@target1`, 'echo second'], { answer: code });
    expect(again.code).toBe(255);
    expect(again.stdout).toBe('');
    expect(audit(w, 'auth.failure').filter((e) => e.data.user === 'erin').map((e) => e.data.reason)).toEqual(['replayed_code']);
  });

  it('a user without TOTP is told to ask an admin', async () => {
    const fay = w.operator('fay', { totp: false });
    grantFor(fay);
    const r = await w.ssh(fay, [`${w.login}@target1`, 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('gatehouse: no TOTP is enrolled for fay: ask an admin to enrol you');
    expect(audit(w, 'auth.failure').filter((e) => e.data.user === 'fay').map((e) => e.data.reason)).toContain('no_totp');
  });

  it('repeated failures lock the user, even with the right code afterwards and across a restart; unlock clears it', async () => {
    const gus = w.operator('gus');
    grantFor(gus);
    for (let i = 0; i < 3; i++) expect((await w.ssh(gus, [`${w.login}@target1`, 'true'], { answer: '000000' })).code).toBe(255);
    expect(audit(w, 'auth.locked').map((e) => e.data.user)).toEqual(['gus']);
    const locked = await w.ssh(gus, [`${w.login}@target1`, 'echo in']);
    expect(locked.code).toBe(255);
    expect(audit(w, 'auth.failure').filter((e) => e.data.user === 'gus').at(-1)!.data.reason).toBe('locked');
    // The lock is in the store: a restart of the bastion does not lift it.
    await w.restart();
    // A right code of a step no attempt so far used (the next step, accepted at once as clock skew,
    // instead of waiting for the clock): refused all the same, for the lock.
    const used = stepAt();
    expect((await w.ssh(gus, [`${w.login}@target1`, 'echo in'], { answer: codeAfter(gus.secret, used) })).code).toBe(255);
    expect(audit(w, 'auth.failure').filter((e) => e.data.user === 'gus').at(-1)!.data.reason).toBe('locked');
    ghOk(w.data, ['user', 'unlock', 'gus']);
    expect((await w.ssh(gus, [`${w.login}@target1`, 'echo in'], { answer: codeAfter(gus.secret, used) })).stdout).toBe('in\n');
  }, 150_000); // restarts the server

  it('at most 6 authentication attempts per connection', async () => {
    let tries = 0;
    const result = await new Promise<string>((resolve) => {
      const c = new ssh2.Client();
      c.on('ready', () => { c.end(); resolve('ready'); });
      c.on('error', (e) => resolve(`error: ${e.message}`));
      c.on('close', () => resolve('closed'));
      c.connect({
        host: '127.0.0.1', port: w.port, username: 'nobody', hostVerifier: () => true, readyTimeout: 20_000,
        authHandler: (_m, _p, next) => { tries++; return tries > 50 ? next(false as never) : next({ type: 'password', username: 'nobody', password: 'x' } as never); },
      });
    });
    expect(result).not.toBe('ready');
    expect(tries).toBeLessThanOrEqual(8);
    expect(audit(w, 'auth.failure').some((e) => e.data.reason === 'too_many_attempts')).toBe(true);
  });

  it('a connection that does not authenticate within loginGraceTime is closed', async () => {
    const started = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const s = net.connect(w.port, '127.0.0.1');
      s.on('data', () => undefined);
      s.on('error', () => undefined);
      s.on('close', () => resolve(Date.now() - started));
      setTimeout(() => { s.destroy(); resolve(-1); }, 15_000);
    });
    expect(closedAfter).toBeGreaterThan(1500);
    expect(closedAfter).toBeLessThan(10_000);
    expect(audit(w, 'auth.failure').some((e) => e.data.reason === 'grace_timeout')).toBe(true);
  });

  it('the listener offers only modern algorithms, an ed25519 host key, and a well-formed server-sig-algs', async () => {
    const r = await import('../helpers/world.js').then(({ runSsh }) => runSsh(
      ['-F', '/dev/null', '-vvv', '-p', String(w.port), '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${w.knownHosts}`, '-o', 'PreferredAuthentications=none', 'nobody@127.0.0.1', 'true'],
      process.env, '', 20_000));
    expect(r.stderr).toMatch(/kex: algorithm: curve25519-sha256/);
    expect(r.stderr).toMatch(/kex: host key algorithm: ssh-ed25519/);
    expect(r.stderr).toMatch(/will use strict KEX ordering/);
    expect(r.stderr).toMatch(/server-sig-algs=<[^>]*ecdsa-sha2-nistp521,rsa-sha2-512,/);
    expect(r.stderr).not.toMatch(/compression: zlib/);
  });
});
