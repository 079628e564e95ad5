import type { AddressInfo } from 'node:net';
import ssh2, { type ClientChannel, type ServerChannel } from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';

/**
 * Regression tests for the fixes gatehouse carries on ssh2 1.17.0 (patches/ssh2+1.17.0.patch).
 * Each one reproduces the upstream bug with an in-process ssh2 server and client and fails on an
 * unpatched ssh2. Every wait is bounded.
 */
const MiB = 1024 * 1024;
const hostKey = ssh2.utils.generateKeyPairSync('ed25519').private;
const cleanups: (() => void)[] = [];
afterEach(() => { while (cleanups.length) cleanups.pop()!(); });

interface Pair {
  client: ssh2.Client;
  serverChannel: Promise<ServerChannel>;
  clientChannel: ClientChannel;
  serverDebug: string[];
}

/** A server that accepts anyone and hands the first exec channel to the test. */
async function pair(): Promise<Pair> {
  const serverDebug: string[] = [];
  let gotChannel!: (ch: ServerChannel) => void;
  const serverChannel = new Promise<ServerChannel>((r) => { gotChannel = r; });
  const server = new ssh2.Server({ hostKeys: [hostKey], debug: (m: string) => serverDebug.push(m) }, (conn) => {
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('ready', () => conn.on('session', (accept) => accept().on('exec', (acc) => {
      const ch = acc();
      ch.on('error', () => undefined);
      ch.stderr.on('error', () => undefined);
      gotChannel(ch);
    })));
    conn.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = new ssh2.Client();
  client.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve()).once('error', reject);
    client.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, username: 'u', hostVerifier: () => true });
  });
  const clientChannel = await new Promise<ClientChannel>((resolve, reject) => client.exec('x', (err, ch) => (err ? reject(err) : resolve(ch))));
  clientChannel.on('error', () => undefined);
  cleanups.push(() => { client.end(); server.close(); });
  return { client, serverChannel, clientChannel, serverDebug };
}

function collect(ch: ClientChannel): { out: () => number; err: () => number; outText: () => string; done: Promise<void> } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  ch.on('data', (d: Buffer) => out.push(d));
  ch.stderr.on('data', (d: Buffer) => err.push(d));
  const done = new Promise<void>((r) => ch.on('close', () => r()));
  return {
    out: () => out.reduce((n, b) => n + b.length, 0), err: () => err.reduce((n, b) => n + b.length, 0),
    outText: () => Buffer.concat(out).toString(), done,
  };
}

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p.then((v) => ({ ok: true as const, v })), new Promise<{ ok: false }>((r) => setTimeout(() => r({ ok: false }), ms))]);

describe('ssh2 1.17.0 patches', () => {
  it('window resume, scenario A: a stderr write waiting for window is resumed even when stdout also waits', async () => {
    const p = await pair();
    const got = collect(p.clientChannel);
    const ch = await p.serverChannel;
    ch.stderr.write(Buffer.alloc(3 * MiB, 0x65));
    ch.write('end\n');
    ch.stderr.end(() => { ch.exit(0); ch.end(); });
    const r = await within(got.done, 10_000);
    expect(r.ok, `stalled with ${got.err()} stderr bytes`).toBe(true);
    expect(got.err()).toBe(3 * MiB);
    expect(got.outText()).toBe('end\n');
  });

  it('window resume, scenario B: a stale stdout chunk is never sent twice', async () => {
    const p = await pair();
    const got = collect(p.clientChannel);
    const ch = await p.serverChannel;
    ch.write(Buffer.alloc(3 * MiB, 0x6f), () => {
      ch.stderr.write(Buffer.alloc(3 * MiB, 0x65));
      ch.stderr.end(() => { ch.exit(0); ch.end(); });
    });
    const r = await within(got.done, 10_000);
    expect(r.ok, `stalled: ${got.out()} stdout, ${got.err()} stderr bytes`).toBe(true);
    expect(got.out()).toBe(3 * MiB);
    expect(got.err()).toBe(3 * MiB);
  });

  it('#1505: data beyond the receive window is not buffered', async () => {
    const p = await pair();
    const ch = await p.serverChannel;
    ch.pause(); // the server does not read
    // A misbehaving peer: ignore the window the server granted.
    (p.clientChannel as unknown as { outgoing: { window: number } }).outgoing.window = 1e12;
    // Odd-sized writes (a 32 KiB packet and a 232-byte one each) keep the server's window off the
    // packet grid, so one packet drives it below zero: the unpatched check only refuses exactly 0.
    const chunk = Buffer.alloc(33_000, 0x61);
    for (let i = 0; i < 640; i++) p.clientChannel.write(chunk);
    await new Promise((r) => setTimeout(r, 1000));
    const buffered = (ch as unknown as { readableLength: number }).readableLength;
    // What was granted legitimately: the 2 MiB high-water mark of the paused stream plus one window.
    expect(buffered).toBeLessThanOrEqual(4 * MiB);
  });

  it('#1508: closing a channel with writes waiting for window calls their callbacks', async () => {
    const p = await pair();
    p.clientChannel.pause(); // the client does not read, so the window runs out
    const ch = await p.serverChannel;
    const callback = new Promise<Error | null | undefined>((r) => ch.write(Buffer.alloc(8 * MiB, 0x61), (err) => r(err)));
    await new Promise((r) => setTimeout(r, 300));
    ch.close();
    const r = await within(callback, 3000);
    expect(r.ok, 'write callback never called').toBe(true);
    if (r.ok) expect(r.v).toBeInstanceOf(Error);
  });

  it('#1483: no WINDOW_ADJUST after we sent CHANNEL_CLOSE', async () => {
    const p = await pair();
    const ch = await p.serverChannel;
    ch.pause();
    p.clientChannel.write(Buffer.alloc(2 * MiB, 0x61));
    await new Promise((r) => setTimeout(r, 500));
    p.serverDebug.length = 0;
    ch.close();
    ch.resume(); // reading now would grant more window on a channel we closed
    await new Promise((r) => setTimeout(r, 300));
    const closeAt = p.serverDebug.findIndex((m) => m.includes('Outbound: Sending CHANNEL_CLOSE'));
    expect(closeAt).toBeGreaterThanOrEqual(0);
    expect(p.serverDebug.slice(closeAt).filter((m) => m.includes('CHANNEL_WINDOW_ADJUST'))).toEqual([]);
  });

  it('#1485: server-sig-algs lists rsa-sha2-512 as its own item', async () => {
    const p = await pair();
    const ext = p.serverDebug.find((m) => m.includes('EXT_INFO'));
    expect(ext).toBeDefined();
    const src = (await import('node:fs')).readFileSync(new URL('../../../node_modules/ssh2/lib/protocol/Protocol.js', import.meta.url), 'utf8');
    expect(src).toMatch(/ecdsa-sha2-nistp521,'\s*\n\s*\+ 'rsa-sha2-512/);
  });
});

describe('ssh2 1.17.0 keygen patch', () => {
  it('every generated ed25519 key loads, including the 1 in 256 whose public key starts with 0x00', () => {
    // 2000 keys: the chance that none of them starts with a zero byte is (255/256)^2000, about 0.04 %.
    let withLeadingZero = 0;
    for (let i = 0; i < 2000; i++) {
      const pair = ssh2.utils.generateKeyPairSync('ed25519');
      const parsed = ssh2.utils.parseKey(pair.private);
      expect(parsed instanceof Error ? parsed.message : 'ok').toBe('ok');
      const pub = ssh2.utils.parseKey(pair.public);
      const blob = (pub as { getPublicSSH(): Buffer }).getPublicSSH();
      expect(blob.length).toBe(51); // 4 + "ssh-ed25519" + 4 + 32
      if (blob[19] === 0) withLeadingZero++;
    }
    expect(withLeadingZero).toBeGreaterThan(0);
  });
});
