import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { ssh2Login as login } from '../helpers/ssh2login.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * The SSH front under attack: what a holder of a key, a code and a grant tries first. Channels on
 * a connection that is not live, forwards that escape the session, ports out of range, malformed
 * targets, huge and control-character input, unknown channel types, and one address holding many
 * half-open connections. Each gets a clear refusal; the server stays up; nothing stored is lost.
 */
type AuditRow = { id: number; type: string; data: Record<string, unknown> };
const audit = (w: World, type?: string) => ghJson<AuditRow[]>(w.data, ['audit', ...(type ? ['--type', type] : []), '--limit', '100000']);

/** Opens a direct-tcpip channel; resolves with the error message, or 'opened' (and closes it). */
function forwardOut(c: ssh2.Client, host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    c.forwardOut('127.0.0.1', 40000, host, port, (err, ch) => {
      if (err) return resolve(err.message);
      ch.end();
      resolve('opened');
    });
  });
}

/** exec on the bastion; resolves with exit code and stderr. */
function exec(c: ssh2.Client, command: string, opts: ssh2.ExecOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    c.exec(command, opts, (err, ch) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      ch.on('data', (d: Buffer) => { stdout += d.toString(); });
      ch.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      ch.on('exit', (n: number | null) => { code = n; });
      ch.on('close', () => resolve({ code, stdout, stderr }));
      ch.end();
    });
  });
}

function echoServer(): Promise<{ port: number; close(): void }> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
    srv.listen(0, '127.0.0.1', () => resolve({ port: (srv.address() as net.AddressInfo).port, close: () => srv.close() }));
  });
}

/** maxPerUser is 1 here: wait (bounded) until the user's previous connection has ended. */
async function noLiveSession(w: World, user: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (!ghJson<{ user: string }[]>(w.data, ['sessions', 'list', '--live']).some((s) => s.user === user)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${user} still has a live session`);
}

describe.runIf(haveOpenSsh())('the gate and the SSH front under attack', () => {
  let w: World;
  let alice: Operator;
  let bob: Operator;
  let echo: { port: number; close(): void };
  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\nsessions:\n  maxPerUser: 1\nssh:\n  perSourceMaxStartups: 4\n  maxStartups: 50\n' });
    alice = w.operator('alice');
    bob = w.operator('bob');
    echo = await echoServer();
    for (const u of ['alice', 'bob']) ghOk(w.data, ['grant', 'add', '--user', u, '--host', 'target1', '--login', w.login, '--allow', 'shell,exec,forward']);
  });
  afterAll(async () => { echo?.close(); await w?.stop(); });

  it('a connection refused by sessions.maxPerUser carries no forward, no jump and no session', async () => {
    const first = await login(w.port, alice);
    expect(await exec(first, `${w.login}@target1 echo hi`)).toMatchObject({ code: 0, stdout: 'hi\n' });
    const second = await login(w.port, alice);
    try {
      expect(await forwardOut(second, 'target1', echo.port)).toMatch(/live sessions \(the limit is 1\)|ending/);
      expect(await forwardOut(second, 'target1', w.sshd.port)).toMatch(/live sessions|ending/);
      const r = await exec(second, `${w.login}@target1 echo hi`).catch((e: Error) => ({ code: null, stdout: '', stderr: e.message }));
      expect(r.stdout).toBe('');
      // The refused connection is closed by the server, not left to hold a forward.
      await new Promise<void>((resolve) => { second.once('close', () => resolve()); setTimeout(resolve, 10_000); });
    } finally {
      second.end();
    }
    expect(audit(w, 'session.refused').at(-1)!.data).toMatchObject({ user: 'alice', reason: 'max_per_user' });
    expect(audit(w, 'forward.open').filter((e) => e.data.user === 'alice')).toEqual([]);
    // The live one still works.
    expect(await forwardOut(first, 'target1', echo.port)).toBe('opened');
    first.end();
  });

  it('a forward is a channel of the live session: a kill ends it, and it is audited with its bytes', async () => {
    const c = await login(w.port, bob);
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => c.forwardOut('127.0.0.1', 1, 'target1', echo.port, (e, s) => (e ? reject(e) : resolve(s))));
    const got = new Promise<string>((resolve) => ch.once('data', (d: Buffer) => resolve(d.toString())));
    ch.write('ping');
    expect(await got).toBe('ping');
    const live = ghJson<{ id: string; user: string }[]>(w.data, ['sessions', 'list', '--live']).filter((s) => s.user === 'bob');
    expect(live).toHaveLength(1);
    ghOk(w.data, ['sessions', 'kill', live[0]!.id, '--reason', 'test']);
    await new Promise<void>((resolve) => { c.once('close', () => resolve()); setTimeout(resolve, 10_000); });
    const closes = audit(w, 'forward.close').filter((e) => e.data.user === 'bob');
    expect(closes.at(-1)!.data).toMatchObject({ host: 'target1', port: echo.port, bytesUp: 4, bytesDown: 4 });
    expect(audit(w, 'session.terminated').at(-1)!.data).toMatchObject({ user: 'bob', reason: 'killed_by_admin' });
  });

  it('bad input on the SSH front: each gets a clear refusal, the server stays up, nothing stored is lost', async () => {
    await noLiveSession(w, 'alice');
    const before = audit(w).length;
    const sessionsBefore = ghJson<unknown[]>(w.data, ['sessions', 'list']).length;
    let c = await login(w.port, alice);
    try {
      // Forward ports out of range and malformed destinations: refused at once, never a hang.
      for (const [host, port] of [['target1', 70000], ['target1', 0], ['target1', -1], ['', 80], ['x'.repeat(5000), 80], ['tar\x1b[2Kget1', 80]] as const) {
        const r = await forwardOut(c, host, port);
        expect(r, `${host.slice(0, 20)}:${port}`).toMatch(/administratively prohibited|not a valid destination|unknown host|Invalid|port/i);
      }
      // Malformed targets and commands.
      const table: [string, RegExp][] = [
        ['justaword', /is not LOGIN@HOST/],
        ['@target1 true', /is not LOGIN@HOST/],
        ['root@ true', /is not LOGIN@HOST/],
        [`${w.login}@nowhere true`, /unknown host "nowhere"/],
        [`${w.login}@tar\x1b[2Kget\x07 true`, /unknown host "tar\?\[2Kget\?"/],
        [`${'a'.repeat(33_000)}@target1 true`, /longer than/],
        [`${w.login}@target1 ${'x'.repeat(33_000)}`, /longer than/],
      ];
      for (const [cmd, expected] of table) {
        const r = await exec(c, cmd);
        expect(r.code, cmd.slice(0, 40)).toBe(1);
        expect(r.stderr, cmd.slice(0, 40)).toMatch(expected);
        expect(r.stderr).not.toMatch(/\x1b|\x07/);
        expect(r.stderr.length).toBeLessThan(1000);
      }
      // Over the SSH packet limit: the protocol ends that connection; the server stays up.
      const huge = await new Promise<string>((resolve) => {
        const x = c;
        x.once('close', () => resolve('connection closed'));
        x.exec(`${w.login}@target1 ${'x'.repeat(300_000)}`, (err) => { if (err) resolve(err.message); });
      });
      expect(huge).toMatch(/closed|Unable to exec/);
      c = await login(w.port, alice);
      // A pty with an absurd size is refused; a subsystem other than through -J is refused.
      const pty = await new Promise<string>((resolve) => c.exec(`${w.login}@target1 true`, { pty: { rows: 4e9, cols: 4e9, height: 0, width: 0, term: 'xterm' } } as never, (err, ch) => {
        if (err) return resolve(err.message);
        ch.on('close', () => resolve('closed'));
        ch.resume();
        ch.stderr.resume();
      }));
      expect(pty).toMatch(/Unable to request a pseudo-terminal/);
      const sub = await new Promise<string>((resolve) => c.subsys('sftp', (err, ch) => {
        if (err) return resolve(err.message);
        let e = '';
        ch.stderr.on('data', (d: Buffer) => { e += d.toString(); });
        ch.on('close', () => resolve(e));
        ch.resume();
      }));
      expect(sub).toMatch(/needs a target/);
      // An unknown channel type (OpenSSH will not send one): the open is refused, the connection lives on.
      const unknown = await new Promise<string>((resolve) => {
        // ssh2's client can only open known types; rename 'session' on the wire for this one open.
        const proto = Buffer.prototype as unknown as { utf8Write(s: string, o: number, l: number): number };
        const orig = proto.utf8Write;
        proto.utf8Write = function (this: Buffer, str: string, o: number, l: number) { return orig.call(this, str === 'session' ? 'bogus-x' : str, o, l); };
        try {
          c.exec('anything', (err) => resolve(err ? err.message : 'opened'));
        } finally {
          proto.utf8Write = orig;
        }
      });
      expect(unknown).toMatch(/open failure|unknown channel type/i);
      expect(await exec(c, 'justaword')).toMatchObject({ code: 1 });
      // Unix sockets and unknown global requests: refused.
      const sock = await new Promise<string>((resolve) => c.openssh_forwardOutStreamLocal('/run/x.sock', (err) => resolve(err ? err.message : 'opened')));
      expect(sock).toMatch(/refused|prohibited/);
    } finally {
      c.end();
    }
    // Huge and control-character user names before authentication: refused; stored cut and harmless.
    for (const username of ['u'.repeat(30_000), 'ev\x1b[2Kil\x07', '']) {
      const outcome = await new Promise<string>((resolve) => {
        const x = new ssh2.Client();
        x.on('error', (e) => resolve(e.message));
        x.on('ready', () => { x.end(); resolve('ready'); });
        x.connect({ host: '127.0.0.1', port: w.port, username, privateKey: fs.readFileSync(alice.key), readyTimeout: 20_000, hostVerifier: () => true });
      });
      expect(outcome).not.toBe('ready');
    }
    // The server is still up and serves a normal login; nothing stored was lost.
    const ok = await w.ssh(alice, [`${w.login}@target1`, 'echo still-here']);
    expect(ok).toMatchObject({ code: 0, stdout: 'still-here\n' });
    const rows = audit(w);
    expect(rows.length).toBeGreaterThan(before);
    expect(rows.every((r) => JSON.stringify(r.data).length < 10_000)).toBe(true);
    expect(ghJson<unknown[]>(w.data, ['sessions', 'list']).length).toBeGreaterThan(sessionsBefore);
    execFileSync(process.execPath, [new URL('../../bin/gatehouse.js', import.meta.url).pathname, 'verify', '--data', w.data], { env: { ...process.env, GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' } });
  });

  it('one address holding half-open connections fills only its own share: another address still logs in', async () => {
    // 127.0.0.2 is loopback too; it plays the attacker.
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const s = net.connect({ host: '127.0.0.1', port: w.port, localAddress: '127.0.0.2' });
        s.on('error', () => undefined);
        held.push(s);
        await new Promise((r) => s.once('connect', r));
      }
      // Over its share: closed by the server at once, not held for the grace time.
      const extra = net.connect({ host: '127.0.0.1', port: w.port, localAddress: '127.0.0.2' });
      extra.on('error', () => undefined);
      const closedEarly = await new Promise<boolean>((resolve) => {
        extra.once('close', () => resolve(true));
        setTimeout(() => resolve(false), 10_000);
      });
      extra.destroy();
      expect(closedEarly).toBe(true);
      // The held ones are still open, and the honest address logs in.
      expect(held.every((s) => !s.destroyed)).toBe(true);
      const ok = await w.ssh(bob, [`${w.login}@target1`, 'echo from-another-address']);
      expect(ok).toMatchObject({ code: 0, stdout: 'from-another-address\n' });
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('a forward to the SSH port of another host at the same address is refused: that session could not be recorded', async () => {
    ghOk(w.data, ['host', 'add', 'twin', '--address', '127.0.0.1', '--port', String(echo.port), '--host-key', w.sshd.hostKey]);
    try {
      await noLiveSession(w, 'bob');
      const c = await login(w.port, bob);
      try {
        expect(await forwardOut(c, 'target1', echo.port)).toMatch(/is the SSH port of twin/);
      } finally {
        c.end();
      }
      expect(audit(w, 'access.denied').at(-1)!.data).toMatchObject({ user: 'bob', host: 'target1', reason: 'bad_request' });
    } finally {
      ghOk(w.data, ['host', 'remove', 'twin']);
    }
  });
});
