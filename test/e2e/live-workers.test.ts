import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ghJson, ghOk } from '../helpers/cli.js';
import { poll } from '../helpers/proc.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';
import { webLogin } from '../helpers/weblogin.js';

/**
 * The web live view with `serve --workers 2`: a web request lands on either worker, whichever one
 * records the session. A view served by the worker that records it reads the in-process hub; one
 * served by the OTHER worker follows the recording's spool file. The audit row of each view says
 * which (`via`), so the test knows it watched through the other worker.
 */
const PASSWORD = 'auditors-passphrase-1';
type AuditRow = { id: number; type: string; data: Record<string, unknown> };
interface SessionJson { id: string; node: string | null }

interface View {
  ws: WebSocket;
  lines: string[];
  closed: Promise<{ code: number; reason: string }>;
  isClosed: () => boolean;
}

function watch(w: World, cookie: string, sid: string): View {
  const ws = new WebSocket(`${w.web.replace(/^http/, 'ws')}/live/${sid}/0`, { headers: { cookie, origin: w.web } });
  const lines: string[] = [];
  let done = false;
  ws.on('message', (d: Buffer) => lines.push(d.toString('utf8')));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code: number, reason: Buffer) => { done = true; resolve({ code, reason: reason.toString() }); });
    ws.on('error', () => { done = true; resolve({ code: -1, reason: 'error' }); });
  });
  return { ws, lines, closed, isClosed: () => done };
}

describe.runIf(haveOpenSsh())('web live view with serve --workers 2', () => {
  let w: World;
  let ada: Operator;
  let alice: Operator;
  let child: ChildProcess | undefined;
  let out = '';

  beforeAll(async () => {
    w = await startWorld({ config: 'node:\n  workers: 2\n  name: gh\n' });
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
    ada = w.operator('ada', { roles: ['auditor'] });
    ghOk(w.data, ['user', 'password', 'ada'], { input: `${PASSWORD}\n` });
  }, 120_000);
  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    await w?.stop();
  });

  it('a view opened through the worker that does not hold the session streams what is typed, then ends with it', async () => {
    const c = w.sshCommand(alice, [`${w.login}@target1`, 'echo ready; while read l; do echo "got $l"; done']);
    child = spawn('setsid', ['-w', 'ssh', ...c.args], { env: c.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const ended = new Promise<number | null>((resolve) => child!.on('close', resolve));
    await poll('alice\'s session', () => (out.includes('ready\n') ? true : undefined), 120_000)
      .catch((e: unknown) => { throw new Error(`${String(e)}; ssh said: ${err.slice(-2000)}; gatehouse said: ${w.gatehouse.stderr().slice(-1000)} ${w.gatehouse.stdout().slice(-4000)}`); });
    const s = ghJson<SessionJson[]>(w.data, ['sessions', 'list', '--live', '--user', 'alice'])[0]!;
    expect(s.node).toMatch(/^gh\/w[12]$/);
    const cookie = await webLogin(w, ada, PASSWORD);

    // The session page offers the live view whichever worker serves it.
    for (let i = 0; i < 4; i++) {
      const page = await (await fetch(`${w.web}/sessions/${s.id}`, { headers: { cookie } })).text();
      expect(page).toContain(`data-live="/live/${s.id}/0"`);
    }

    // New connections go to the workers in turn: open views until one is served by the other worker.
    const lastView = () => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'web.live_view']).filter((e) => e.data.session === s.id).at(-1);
    const vias: string[] = [];
    let view: View | undefined;
    for (let attempt = 0; attempt < 10 && !view; attempt++) {
      const before = lastView()?.id ?? 0;
      const v = watch(w, cookie, s.id);
      // The header arrives (the view was audited first), or the socket closes (the old "not live").
      await poll('the view to start or close', () => (v.lines.length > 0 || v.isClosed() ? true : undefined), 30_000);
      const closedEarly = v.isClosed() ? await v.closed : null;
      expect(closedEarly, `view closed: ${JSON.stringify(closedEarly)}`).toBeNull();
      const row = lastView()!;
      expect(row.id).toBeGreaterThan(before);
      expect(row.data).toMatchObject({ user: 'ada', session: s.id, channel: 0, sessionUser: 'alice' });
      vias.push(String(row.data.via));
      if (row.data.via === 'spool') view = v;
      else v.ws.close();
    }
    expect(vias).toContain('spool');
    expect(JSON.parse(view!.lines[0]!)).toMatchObject({ version: 2 });

    // What alice types now reaches the viewer on the other worker.
    child.stdin!.write('watched-from-the-other-worker\n');
    await poll('the echo in the ssh client', () => (out.includes('got watched-from-the-other-worker\n') ? true : undefined), 30_000);
    await poll('the typed text in the live view', () => (view!.lines.some((l) => l.includes('got watched-from-the-other-worker')) ? true : undefined), 30_000);
    for (const l of view!.lines) expect(() => JSON.parse(l)).not.toThrow();

    // The session ends: so does the view (its channel closed in the store).
    child.stdin!.end();
    expect(await ended).toBe(0);
    const closed = await Promise.race([view!.closed, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
    expect(closed).toEqual({ code: 1000, reason: 'session ended' });
    // Ended: any worker now answers "not live".
    const late = watch(w, cookie, s.id);
    expect(await late.closed).toEqual({ code: 1000, reason: 'not live' });
  }, 360_000);
});
