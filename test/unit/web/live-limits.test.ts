import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { LIVE_MAX_BUFFERED, LIVE_PER_PROCESS, LIVE_PER_SESSION } from '../../../src/web/live.js';
import { poll } from '../../helpers/proc.js';
import { login, startWeb, type WebFixture } from './fixture.js';

const HEADER = '{"version":2,"width":80,"height":24}\n';

/** Live views cost memory: a slow viewer is cut off, and one sign-in cannot open views without end. */
describe('live view limits', () => {
  let f: WebFixture;
  let port: number;
  let cookie: string;

  beforeAll(async () => {
    f = await startWeb();
    await f.app.listen({ host: '127.0.0.1', port: 0 });
    port = (f.app.server.address() as AddressInfo).port;
    cookie = (await login(f, 'aud', { from: '10.1.0.9' })).jar.header;
  });
  afterAll(async () => { await f?.close(); });

  interface View { ws: WebSocket; frames: number; closed: Promise<{ code: number; reason: string }> }
  function view(url: string, as = cookie): View {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${url}`, { headers: { cookie: as, origin: `http://127.0.0.1:${port}` } });
    const v = { ws, frames: 0 } as View;
    ws.on('message', () => { v.frames++; });
    v.closed = new Promise((resolve, reject) => {
      ws.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
      ws.on('error', reject);
    });
    return v;
  }

  it(`at most ${LIVE_PER_SESSION} live views per sign-in; a closed one frees its place`, async () => {
    f.hub.open('sess-1', 0, Buffer.from(HEADER));
    const views: View[] = [];
    for (let i = 0; i < LIVE_PER_SESSION; i++) {
      const v = view('/live/sess-1/0');
      views.push(v);
      await poll('the header', () => (v.frames >= 1 ? true : undefined), 10_000);
    }
    const extra = view('/live/sess-1/0');
    expect(await extra.closed).toEqual({ code: 1013, reason: `too many live views (at most ${LIVE_PER_SESSION} per sign-in)` });
    expect(extra.frames).toBe(0);
    views[0]!.ws.close();
    await views[0]!.closed;
    const again = view('/live/sess-1/0');
    await poll('the header', () => (again.frames >= 1 ? true : undefined), 10_000);
    for (const v of [...views.slice(1), again]) v.ws.close();
    await Promise.all([...views.slice(1), again].map((v) => v.closed));
    f.hub.close('sess-1', 0);
  }, 60_000);

  it(`at most ${LIVE_PER_PROCESS} live views in one process, whoever opens them; a closed one frees its place`, async () => {
    f.hub.open('sess-2', 0, Buffer.from(HEADER));
    // Each sign-in may hold LIVE_PER_SESSION views: enough sign-ins to reach the process's cap.
    const signIns: string[] = [];
    for (let i = 0; signIns.length * LIVE_PER_SESSION < LIVE_PER_PROCESS + LIVE_PER_SESSION; i++) {
      const l = await login(f, 'aud', { from: `10.2.${Math.floor(i / 200)}.${i % 200 + 1}` });
      expect(l.status, l.location).toBe(303);
      signIns.push(l.jar.header);
    }
    const views: View[] = [];
    for (let i = 0; i < LIVE_PER_PROCESS; i++) views.push(view('/live/sess-2/0', signIns[Math.floor(i / LIVE_PER_SESSION)]!));
    await poll('every header', () => (views.every((v) => v.frames >= 1) ? true : undefined), 30_000);
    // A sign-in with no view open yet is still refused: the cap is the process's, not the sign-in's.
    const fresh = signIns[signIns.length - 1]!;
    const extra = view('/live/sess-2/0', fresh);
    const stillOpen = new Promise((resolve) => setTimeout(() => resolve('still open after 15 s'), 15_000).unref());
    expect(await Promise.race([extra.closed, stillOpen])).toEqual({ code: 1013, reason: 'too many live views on this server; try again later' });
    expect(extra.frames).toBe(0);
    views[0]!.ws.close();
    await views[0]!.closed;
    const again = view('/live/sess-2/0', fresh);
    await poll('the header', () => (again.frames >= 1 ? true : undefined), 10_000);
    for (const v of [...views.slice(1), again]) v.ws.close();
    await Promise.all([...views.slice(1), again].map((v) => v.closed));
    f.hub.close('sess-2', 0);
  }, 120_000);

  it('a viewer that does not read is closed with 1013 "viewer too slow" once its socket holds more than the limit', async () => {
    f.hub.open('sess-1', 1, Buffer.from(HEADER));
    const v = view('/live/sess-1/1');
    await poll('the header', () => (v.frames >= 1 ? true : undefined), 10_000);
    v.ws.pause();
    // Far more than the limit plus what the kernel's socket buffers take, published while it reads nothing.
    const line = JSON.stringify([0.1, 'o', 'x'.repeat(64 * 1024)]) + '\n';
    const lines = Math.ceil((LIVE_MAX_BUFFERED * 6) / line.length);
    for (let i = 0; i < lines; i++) f.hub.publish('sess-1', 1, Buffer.from(line));
    v.ws.resume();
    expect(await v.closed).toEqual({ code: 1013, reason: 'viewer too slow' });
    expect(v.frames).toBeLessThan(lines);
    f.hub.close('sess-1', 1);
  }, 60_000);
});
