import { spawn, type ChildProcess } from 'node:child_process';
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poll } from '../helpers/proc.js';
import { ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * `serve --workers 2` (node.workers in the config): a primary holding the sockets and two worker
 * processes, each a node of its own on the shared SQLite store. Every user logs in once (each worker
 * claims TOTP steps in the store, and auth.mfaGrace is per process).
 */
interface SessionJson { id: string; user: string; live: boolean; endReason: string | null; node: string | null }
interface NodeJson { name: string; pid: number; state: string }

interface Held {
  op: Operator;
  child: ChildProcess;
  out: () => string;
  err: () => string;
  done: Promise<number | null>;
  id: string;
  node: string;
}


describe.runIf(haveOpenSsh())('serve --workers 2', () => {
  let w: World;
  let n = 0;
  const held: Held[] = [];

  /** A new operator with a grant, logged in once with a session that echoes each line it reads. */
  async function hold(): Promise<Held> {
    const op = w.operator(`op${++n}`);
    ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target1', '--login', w.login]);
    const c = w.sshCommand(op, [`${w.login}@target1`, 'echo ready; while read l; do echo "got $l"; done']);
    const child = spawn('setsid', ['-w', 'ssh', ...c.args], { env: c.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const done = new Promise<number | null>((resolve) => child.on('close', resolve));
    await poll(`${op.name}'s session`, () => (out.includes('ready\n') ? true : undefined));
    const s = ghJson<SessionJson[]>(w.data, ['sessions', 'list', '--live', '--user', op.name])[0]!;
    const h: Held = { op, child, out: () => out, err: () => err, done, id: s.id, node: s.node! };
    held.push(h);
    return h;
  }

  async function echoes(h: Held, line: string): Promise<void> {
    h.child.stdin!.write(`${line}\n`);
    await poll(`"got ${line}" from ${h.op.name}`, () => (h.out().includes(`got ${line}\n`) ? true : undefined));
  }

  const nodes = () => ghJson<NodeJson[]>(w.data, ['nodes']);
  const session = (id: string) => ghJson<SessionJson>(w.data, ['sessions', 'show', id]);

  beforeAll(async () => {
    w = await startWorld({ config: 'node:\n  workers: 2\n  name: gh\n' });
  }, 120_000);
  afterAll(async () => {
    for (const h of held) if (h.child.pid !== undefined && h.child.exitCode === null) process.kill(h.child.pid, 'SIGKILL');
    await w?.stop();
  });

  it('runs a primary and two worker nodes; sessions land on both and list --live names each one\'s node', async () => {
    expect(w.gatehouse.stderr()).toMatch(/node gh, 2 workers/);
    const live = nodes().filter((x) => x.state === 'live').map((x) => x.name).sort();
    expect(live).toEqual(['gh', 'gh/w1', 'gh/w2']);
    // The primary hands connections to the workers in turn: a few logins reach both.
    for (let i = 0; i < 6 && new Set(held.map((h) => h.node)).size < 2; i++) await hold();
    expect(new Set(held.map((h) => h.node))).toEqual(new Set(['gh/w1', 'gh/w2']));
    const listed = ghJson<SessionJson[]>(w.data, ['sessions', 'list', '--live']);
    for (const h of held) expect(listed.find((s) => s.id === h.id)?.node).toBe(h.node);
    expect(ghOk(w.data, ['sessions', 'list', '--live'])).toMatch(/NODE[\s\S]*gh\/w[12]/);
  });

  it('sessions kill ends a session on either worker, carried out once by the worker holding it', async () => {
    for (const node of ['gh/w1', 'gh/w2']) {
      const h = held.find((x) => x.node === node && x.child.exitCode === null)!;
      const others = held.filter((x) => x !== h && x.child.exitCode === null);
      ghOk(w.data, ['sessions', 'kill', h.id, '--reason', 'test']);
      expect(await h.done).not.toBe(0);
      expect(h.err()).toMatch(/session ended by an administrator/);
      const ended = await poll('the kill to be recorded', () => { const s = session(h.id); return s.live ? undefined : s; });
      expect(ended.endReason).toBe('killed_by_admin');
      // The other worker did not carry it out too, nor end anything else.
      const terminated = ghJson<{ data: Record<string, unknown> }[]>(w.data, ['audit', '--type', 'session.terminated']).filter((e) => e.data.session === h.id);
      expect(terminated).toHaveLength(1);
      for (const o of others) expect(o.child.exitCode).toBeNull();
    }
    const db = new Database(path.join(w.data, 'gatehouse.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM session_kills WHERE done_at IS NULL').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });

  it('a grant removed through the CLI ends the live session on whichever worker holds it', async () => {
    while (new Set(held.filter((h) => h.child.exitCode === null).map((h) => h.node)).size < 2 && n < 14) await hold();
    for (const node of ['gh/w1', 'gh/w2']) {
      const h = held.find((x) => x.node === node && x.child.exitCode === null)!;
      const grant = ghJson<{ id: number; who: { name: string } }[]>(w.data, ['grant', 'list']).find((g) => g.who.name === h.op.name)!;
      const t0 = Date.now();
      ghOk(w.data, ['grant', 'remove', String(grant.id)]);
      expect(await h.done).not.toBe(0);
      // The figure is printed, not bounded (no timing thresholds): the session (whose command never
      // ends by itself) ended, told why.
      console.log(`grant remove ended the session on ${node} ${Date.now() - t0} ms after the CLI started`);
      expect(h.err()).toMatch(/access revoked by an administrator/);
    }
  });

  it('SIGHUP: fresh workers take new logins; a session opened before goes on (a command typed after it answers) and its old worker exits after it', async () => {
    const before = await hold();
    await echoes(before, 'one');
    const oldNames = nodes().filter((x) => x.state === 'live' && x.name.startsWith('gh/')).map((x) => x.name);
    process.kill(w.gatehouse.child.pid!, 'SIGHUP');
    await w.gatehouse.waitFor(/fresh workers serve; old ones retiring/, 90_000);
    await echoes(before, 'two');
    expect(before.child.exitCode).toBeNull();

    // Housekeeping went to a fresh worker: the old one (alive, serving `before`) no longer mirrors
    // the audit log (nor sweeps, scans or reaps). Two mirrors would print every audit line twice.
    const auditOf = (user: string) => w.gatehouse.stdout().split('\n').filter((l) => l.includes('"msg":"audit"') && l.includes('"event":"admin.user.add"'))
      .map((l) => JSON.parse(l) as { data: { user: string } }).filter((l) => l.data.user === user);
    ghOk(w.data, ['user', 'add', 'hk1']);
    await poll('the audit line of hk1', () => (auditOf('hk1').length > 0 ? true : undefined));
    // Time for a second mirror to show itself (it polls every 250 ms): two more changes, each a CLI run.
    ghOk(w.data, ['user', 'add', 'hk2']);
    ghOk(w.data, ['user', 'add', 'hk3']);
    await poll('the audit line of hk3', () => (auditOf('hk3').length > 0 ? true : undefined));
    expect(auditOf('hk1')).toHaveLength(1);
    expect(auditOf('hk2')).toHaveLength(1);

    // A new login after SIGHUP reaches a fresh worker.
    const after = await hold();
    expect(oldNames).not.toContain(after.node);
    await echoes(after, 'three');

    // The old worker that held `before` finishes when it ends, cleanly (never interrupted).
    const oldPid = nodes().find((x) => x.name === before.node)!.pid;
    before.child.stdin!.end();
    expect(await before.done).toBe(0);
    expect((await poll('the old session to end', () => { const s = session(before.id); return s.live ? undefined : s; })).endReason).not.toBe('interrupted');
    await poll('the old worker to exit', () => { try { process.kill(oldPid, 0); return undefined; } catch { return true; } }, 30_000);
    // It left cleanly, and its row is dropped: worker names never come back, rows must not pile up.
    await poll('the old worker\'s row to be dropped', () => (nodes().some((x) => x.name === before.node) ? undefined : true));
  });

  it('a worker that dies (kill -9) has its session closed as interrupted by the primary, and a new worker takes its place', async () => {
    const h = await hold();
    const pid = nodes().find((x) => x.name === h.node)!.pid;
    process.kill(pid, 'SIGKILL');
    await h.done;
    const s = await poll('the dead worker\'s session to be closed', () => { const r = session(h.id); return r.live ? undefined : r; });
    expect(s.endReason).toBe('interrupted');
    // Its sessions closed, the dead worker's row goes too.
    await poll('the dead worker\'s row to be dropped', () => (nodes().some((x) => x.name === h.node) ? undefined : true));
    await poll('a replacement worker', () => (nodes().filter((x) => x.state === 'live' && x.name.startsWith('gh/')).length === 2 ? true : undefined), 60_000);
    const again = await hold();
    await echoes(again, 'alive');
  });

  it('SIGTERM to the primary drains every worker and exits 0', async () => {
    const last = held.filter((h) => h.child.exitCode === null);
    expect(last.length).toBeGreaterThan(0);
    const code = await w.gatehouse.stop('SIGTERM');
    expect(code).toBe(0);
    for (const h of last) {
      await h.done;
      expect(h.err()).toMatch(/going down/);
      expect(session(h.id).endReason).toBe('shutdown');
    }
    expect(nodes().every((x) => x.state === 'stopped')).toBe(true);
  });
});
