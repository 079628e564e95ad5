import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { ssh2Login as login } from '../helpers/ssh2login.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * Ending a session must end it on the target side, whatever the operator's client does, and a
 * channel still connecting when its access goes away must never start. An attacker's client that
 * ignores CHANNEL_CLOSE and DISCONNECT (here: a relay that stops passing the server's bytes to the
 * client, while still passing the client's) tries to keep typing after a kill or a revocation.
 */
type AuditRow = { type: string; data: Record<string, unknown> };
const audit = (w: World, type: string) => ghJson<AuditRow[]>(w.data, ['audit', '--type', type, '--limit', '100000']);

/** A TCP relay in front of PORT; freeze() stops the server → client direction for good. */
function relay(port: number, opts: { holdFirstMs?: number } = {}): Promise<{ port: number; freeze(): void; close(): void }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((client) => {
    // allowHalfOpen: a FIN from the bastion does not end what the client still sends.
    const server = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    sockets.add(client);
    sockets.add(server);
    const start = Date.now();
    client.on('data', (d) => {
      const wait = Math.max(0, (opts.holdFirstMs ?? 0) - (Date.now() - start));
      if (wait > 0) setTimeout(() => server.write(d), wait); else server.write(d);
    });
    server.on('data', (d) => { if (!frozen) client.write(d); });
    for (const s of [client, server]) s.on('error', () => undefined);
    client.on('close', () => server.destroy());
    server.on('close', () => { if (!frozen) client.destroy(); });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    port: (srv.address() as net.AddressInfo).port,
    freeze: () => { frozen = true; },
    close: () => { srv.close(); for (const s of sockets) s.destroy(); },
  })));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(haveOpenSsh())('ending a session ends it on the target, whatever the client does', () => {
  let w: World;
  let scratch: string;
  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    scratch = path.join(w.dir, 'scratch');
    fs.mkdirSync(scratch, { mode: 0o777 });
  });
  afterAll(async () => { await w?.stop(); });

  let n = 0;
  for (const [what, act, reason] of [
    ['sessions kill', (w: World, _op: Operator, sid: string) => ghOk(w.data, ['sessions', 'kill', sid]), 'killed_by_admin'],
    ['grant remove', (w: World, op: Operator) => { for (const g of ghJson<{ id: number; who: { name: string } }[]>(w.data, ['grant', 'list'])) if (g.who.name === op.name) ghOk(w.data, ['grant', 'remove', String(g.id)]); }, 'no_grant'],
    ['user disable', (w: World, op: Operator) => ghOk(w.data, ['user', 'disable', op.name]), 'user_disabled'],
  ] as const) {
    it(`${what}: a client that ignores CLOSE and DISCONNECT can type nothing more on the target`, async () => {
      const op = w.operator(`deaf${++n}`);
      ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'target1', '--login', w.login, '--allow', 'exec']);
      const r = await relay(w.port);
      const c = await login(r.port, op);
      try {
        const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => c.exec(`${w.login}@target1 bash`, (e, s) => (e ? reject(e) : resolve(s))));
        const ready = new Promise<void>((resolve) => ch.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); }));
        ch.write('echo ready\n');
        await ready;
        const sid = ghJson<{ id: string; user: string }[]>(w.data, ['sessions', 'list', '--live']).find((s) => s.user === op.name)!.id;
        r.freeze();
        act(w, op, sid);
        await expect.poll(() => audit(w, 'session.terminated').filter((e) => e.data.session === sid).length, { timeout: 10_000 }).toBe(1);
        await sleep(1500);
        const marker = path.join(scratch, `after-${op.name}`);
        ch.write(`touch ${marker}\n`);
        await sleep(2500);
        ch.write(`touch ${marker}-2\n`);
        await sleep(1500);
        expect(fs.existsSync(marker)).toBe(false);
        expect(fs.existsSync(`${marker}-2`)).toBe(false);
        expect(audit(w, 'session.terminated').filter((e) => e.data.session === sid).map((e) => e.data.reason)).toEqual([reason]);
        if (reason !== 'no_grant') {
          // The whole connection went: off the live list, its row closed, even though the client never closed it.
          await expect.poll(() => ghJson<{ id: string }[]>(w.data, ['sessions', 'list', '--live']).some((s) => s.id === sid), { timeout: 10_000 }).toBe(false);
        }
      } finally {
        c.end();
        r.close();
      }
    });
  }

  it('a channel still connecting when its grant is removed never starts', async () => {
    const op = w.operator('slowpoke');
    // A target that takes 6 s to answer: the grant goes away while the bastion dials it.
    const slow = await relay(w.sshd.port, { holdFirstMs: 6000 });
    try {
      ghOk(w.data, ['host', 'add', 'slow1', '--address', '127.0.0.1', '--port', String(slow.port), '--host-key', w.sshd.hostKey]);
      ghOk(w.data, ['grant', 'add', '--user', op.name, '--host', 'slow1', '--login', w.login, '--allow', 'exec']);
      const g = ghJson<{ id: number; who: { name: string } }[]>(w.data, ['grant', 'list']).find((x) => x.who.name === op.name)!;
      const c = await login(w.port, op);
      try {
        const marker = path.join(scratch, 'slow-ran');
        const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
          c.exec(`${w.login}@slow1 touch ${marker}; echo still-running`, (e, ch) => {
            if (e) return reject(e);
            let stdout = '';
            let stderr = '';
            let code: number | null = null;
            ch.on('data', (d: Buffer) => { stdout += d.toString(); });
            ch.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
            ch.on('exit', (x: number | null) => { code = x; });
            ch.on('close', () => resolve({ code, stdout, stderr }));
          });
        });
        await sleep(300);
        ghOk(w.data, ['grant', 'remove', String(g.id)]);
        const r = await result;
        expect(r.stdout).toBe('');
        expect(r.stderr).toMatch(/access revoked by an administrator/);
        await sleep(7000);
        expect(fs.existsSync(marker)).toBe(false);
        expect(audit(w, 'session.terminated').filter((e) => e.data.user === op.name).map((e) => e.data.reason)).toEqual(['no_grant']);
      } finally {
        c.end();
      }
    } finally {
      slow.close();
    }
  });
});
