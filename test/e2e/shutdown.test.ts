import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

type AuditRow = { type: string; data: Record<string, unknown> };
type Show = { endReason: string | null; recordings: { state: string }[] };

function jsonLines(text: string): Record<string, unknown>[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Resolves with the session id once its channel relays (the first line of output has arrived). */
async function started(w: World, op: Operator, command: string, extra: string[] = []): Promise<{ sid: string; done: Promise<SshResult> }> {
  const before = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel', '--user', op.name]).length;
  const done = w.ssh(op, [`${w.login}@target1`, command], { timeoutMs: 120_000, extra });
  let ended: SshResult | null = null;
  void done.then((r) => { ended = r; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const rows = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel', '--user', op.name]);
    if (rows.length > before) return { sid: rows.at(-1)!.data.session as string, done };
    if (ended !== null || Date.now() > deadline) throw new Error(`the session never started: ${JSON.stringify(ended)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
}

describe.runIf(haveOpenSsh())('graceful shutdown on SIGTERM', () => {
  let w: World;
  let alice: Operator;
  // A second operator for after the restart: a TOTP step is accepted once, and mfaGrace is in memory.
  let bob: Operator;

  beforeAll(async () => {
    w = await startWorld({ config: 'shutdownGrace: 6s\nauth:\n  mfaGrace: 10m\n' });
    alice = w.operator('alice');
    bob = w.operator('bob');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
    ghOk(w.data, ['grant', 'add', '--user', 'bob', '--host', 'target1', '--login', w.login]);
  }, 60_000);
  afterAll(async () => { await w?.stop(); });

  it('a session that ends within the grace finishes its work; the operator was told; exit 0', async () => {
    const s = await started(w, alice, 'echo started; sleep 3; echo finished');
    const exit = w.gatehouse.stop('SIGTERM');
    const r = await s.done;
    expect(r.stderr).toMatch(/gatehouse: the bastion is going down in 6s: finish your work and log out/);
    expect(r.stdout).toBe('started\nfinished\n');
    expect(r.code).toBe(0);
    expect(await exit).toBe(0);
    const show = ghJson<Show>(w.data, ['sessions', 'show', s.sid]);
    expect(show.endReason).not.toBe('shutdown');
    expect(show.recordings.map((x) => x.state)).toEqual(['closed']);
  }, 60_000);

  it('a session still live when the grace ends is closed as `shutdown`, its recording closed (not interrupted); no new connection meanwhile', async () => {
    await w.restart();
    const s = await started(w, bob, 'echo started; sleep 600', ['-tt']);
    const exit = w.gatehouse.stop('SIGTERM');
    await w.gatehouse.waitFor(/live sessions told the bastion is going down/, 10_000);
    expect(await refused(w.port)).toBe(true);
    const r = await s.done;
    const seen = r.stdout + r.stderr;
    expect(seen).toMatch(/gatehouse: the bastion is going down in 6s/);
    expect(seen).toMatch(/gatehouse: the bastion is shutting down/);
    expect(await exit).toBe(0);
    const show = ghJson<Show>(w.data, ['sessions', 'show', s.sid]);
    expect(show.endReason).toBe('shutdown');
    expect(show.recordings.map((x) => x.state)).toEqual(['closed']);
    const end = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.end']).filter((e) => e.data.session === s.sid);
    expect(end.map((e) => e.data.reason)).toEqual(['shutdown']);
    const v = ghJson<{ ok: boolean; recordings: { items: { sessionId: string; verdict: string; state: string }[] } }>(w.data, ['verify', s.sid]);
    expect(v.recordings.items.map((i) => [i.verdict, i.state])).toEqual([['intact', 'closed']]);
    // The next start finds nothing to recover: nothing was left open.
    await w.restart();
    expect(jsonLines(w.gatehouse.stdout()).some((l) => /interrupted|recovered/.test(String(l.msg)))).toBe(false);
    expect(ghJson<Show>(w.data, ['sessions', 'show', s.sid]).endReason).toBe('shutdown');
  }, 90_000);
});
