import fs from 'node:fs';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { ssh2Login } from '../helpers/ssh2login.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * A hostile SFTP client (ssh2's client, writing raw bytes into an sftp-server channel through
 * gatehouse): a field longer than its packet, an unknown request type, a 64 KiB path and a 1 MB
 * packet. Each ends its channel with `transfer.malformed`; an honest SFTP session open alongside
 * keeps working, new sessions are served, and gatehouse's memory does not grow with the attacks.
 */
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const str = (b: Buffer) => Buffer.concat([u32(b.length), b]);
const pkt = (type: number, ...parts: Buffer[]) => { const body = Buffer.concat([Buffer.from([type]), ...parts]); return Buffer.concat([u32(body.length), body]); };
const INIT = pkt(1, u32(3));
const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

const ATTACKS: [string, () => Buffer, RegExp][] = [
  // OPEN whose path claims 1 MiB inside a 20-byte packet.
  ['a length beyond the packet', () => pkt(3, u32(7), u32(1 << 20), Buffer.from('/etc/x'), u32(1), u32(0)), /string length runs past the packet/],
  ['an unknown request type', () => pkt(77, u32(8), Buffer.from('whatever')), /unknown SFTP request type 77/],
  ['a 64 KiB path', () => pkt(3, u32(9), str(Buffer.alloc(65_536, 0x61)), u32(1), u32(0)), /string of 65536 bytes is longer than 4096/],
  ['a 1 MB packet', () => Buffer.concat([u32(1_000_000), Buffer.from([3]), Buffer.alloc(999_999, 0x41)]), /packet length 1000000 is outside/],
];

describe.runIf(haveOpenSsh())('file audit: a hostile SFTP client', () => {
  let w: World;
  let alice: Operator;

  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
  }, 240_000);
  afterAll(async () => {
    await w?.stop();
    if (w) for (const d of [w.dir, w.sshd.dir]) fs.rmSync(d, { recursive: true, force: true });
  }, 120_000);

  /** An sftp-server channel through command mode, after INIT/VERSION. */
  async function sftpChannel(c: ssh2.Client): Promise<{ ch: ssh2.ClientChannel; replies: () => Buffer; stderr: () => string; closed: Promise<void> }> {
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => c.exec(`${w.login}@target1 /usr/lib/openssh/sftp-server`, (e, s) => (e ? reject(e) : resolve(s))));
    let out = Buffer.alloc(0);
    let err = '';
    ch.on('data', (d: Buffer) => { out = Buffer.concat([out, d]); });
    ch.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const closed = new Promise<void>((resolve) => ch.once('close', () => resolve()));
    ch.write(INIT);
    await expect.poll(() => out.length, { timeout: 20_000 }).toBeGreaterThanOrEqual(9); // VERSION
    expect(out[4]).toBe(2);
    return { ch, replies: () => out, stderr: () => err, closed };
  }

  it('each hostile packet ends its channel with transfer.malformed; an honest session beside it and new sessions are served; memory stays bounded', async () => {
    // The honest session, open during all the attacks.
    const honest = await ssh2Login(w.port, alice);
    const good = await sftpChannel(honest);

    const pid = w.gatehouse.child.pid!;
    const ROUNDS = 5;
    let before = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // The first round warms up (code paths, buffers); memory is measured from its end.
      if (round === 1) before = rssKiB(pid);
      const c = await ssh2Login(w.port, alice);
      try {
        for (const [what, bytes, error] of ATTACKS) {
          const bad = await sftpChannel(c);
          bad.ch.write(bytes());
          await bad.closed;
          expect(bad.stderr(), what).toMatch(/gatehouse: the sftp stream was ended/);
          expect(bad.stderr(), what).toMatch(error);
        }
      } finally {
        c.end();
      }
    }
    const after = rssKiB(pid);

    const malformed = ghJson<{ data: Record<string, unknown> }[]>(w.data, ['audit', '--type', 'transfer.malformed']).map((e) => e.data);
    expect(malformed).toHaveLength(ATTACKS.length * ROUNDS);
    for (const [what, , error] of ATTACKS) {
      expect(malformed.filter((m) => error.test(String(m.error))), what).toHaveLength(ROUNDS);
    }
    expect(malformed.every((m) => m.user === 'alice' && m.protocol === 'sftp' && typeof m.channel === 'number')).toBe(true);

    // The honest channel still answers: REALPATH "." → NAME.
    const seen = good.replies().length;
    good.ch.write(pkt(16, u32(1), str(Buffer.from('.'))));
    await expect.poll(() => good.replies().length, { timeout: 20_000 }).toBeGreaterThan(seen);
    expect(good.replies()[seen + 4]).toBe(104);
    good.ch.end();
    honest.end();
    // And a new session is served.
    const r = await w.ssh(alice, [`${w.login}@target1`, 'echo still-serving']);
    expect(r.stdout).toBe('still-serving\n');

    // A bound on memory, not a timing: 4 × 4 hostile channels (4 MB of 1 MB packets among them)
    // leave gatehouse's resident set within 64 MiB of where it was after the first round.
    expect(after - before).toBeLessThan(64 * 1024);
  }, 300_000);
});
