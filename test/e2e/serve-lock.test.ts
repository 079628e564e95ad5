import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ghJson, ghOk } from '../helpers/cli.js';
import { freePort, startProc } from '../helpers/proc.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

interface SessionJson { id: string; live: boolean; endReason: string | null }

/** An ssh exec that stays live until the test writes a line to its stdin. */
function holdSession(w: World, op: Operator, target: string): { child: ChildProcess; out: () => string; done: Promise<number | null> } {
  const c = w.sshCommand(op, [target, 'read line; echo "got $line"']);
  const child = spawn('setsid', ['-w', 'ssh', ...c.args], { env: c.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const done = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, out: () => out, done };
}

/** A second `serve` on the world's data dir (other ports): its exit status and stderr once it refused, or ran. */
async function secondServer(w: World): Promise<{ code: number | null; stderr: string }> {
  const p = startProc(process.execPath, [BIN, 'serve', '--data', w.data, '--ssh-listen', `127.0.0.1:${await freePort()}`, '--web-listen', `127.0.0.1:${await freePort()}`],
    { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' } });
  await p.waitFor(/serve\.lock|ssh on 127/, 30_000).catch(() => undefined);
  if (/ssh on 127/.test(p.stderr())) {
    await p.stop();
    return { code: null, stderr: p.stderr() };
  }
  // It printed the refusal: let it exit by itself (a signal now would hide its status); bounded.
  const timer = setTimeout(() => void p.stop(), 20_000);
  const code = await new Promise<number | null>((resolve) => {
    if (p.child.exitCode !== null) resolve(p.child.exitCode);
    else p.child.once('exit', (c) => resolve(c));
  });
  clearTimeout(timer);
  return { code, stderr: p.stderr() };
}

async function poll<T>(what: string, fn: () => T | undefined, tries = 100): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe.runIf(haveOpenSsh())('one server per data directory', () => {
  let w: World;
  let alice: Operator;
  let target: string;
  let held: ReturnType<typeof holdSession> | undefined;
  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    alice = w.operator('alice');
    target = `${w.login}@target1`;
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
  });
  afterAll(async () => {
    if (held?.child.pid !== undefined && held.child.exitCode === null) process.kill(held.child.pid, 'SIGKILL');
    await w?.stop();
  });

  it('a second serve on the same data dir refuses to start, names the lock, and leaves live sessions alone', async () => {
    held = holdSession(w, alice, target);
    const live = await poll('a live session', () => ghJson<SessionJson[]>(w.data, ['sessions', 'list', '--live'])[0]);

    // Other ports, so that only the data directory is shared.
    const second = await secondServer(w);
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toContain('serve.lock');
    expect(second.stderr).toMatch(new RegExp(`another gatehouse server \\(pid ${w.gatehouse.child.pid} `));
    expect(ghJson<SessionJson>(w.data, ['sessions', 'show', live.id]).live).toBe(true);

    held.child.stdin!.end('still here\n');
    expect(await held.done).toBe(0);
    expect(held.out()).toBe('got still here\n');
    const ended = await poll('the session end', () => {
      const s = ghJson<SessionJson>(w.data, ['sessions', 'show', live.id]);
      return s.live ? undefined : s;
    });
    expect(ended.endReason).not.toBe('interrupted');
  });

  it('after kill -9 the lock is not stale: a restart works and closes what the dead server left open', async () => {
    held = holdSession(w, alice, target);
    const live = await poll('a live session', () => ghJson<SessionJson[]>(w.data, ['sessions', 'list', '--live'])[0]);
    await w.gatehouse.stop('SIGKILL');
    await w.restart();
    expect(ghJson<SessionJson>(w.data, ['sessions', 'show', live.id]).endReason).toBe('interrupted');
    // And the restarted server holds the lock in turn.
    const again = await secondServer(w);
    expect(again.code, again.stderr).toBe(1);
    expect(again.stderr).toMatch(new RegExp(`pid ${w.gatehouse.child.pid} .*serve\\.lock`));
  });
});
