import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { get, login, startWeb, type WebFixture } from './fixture.js';

/**
 * A session live on a node whose spool this machine cannot see (one data directory per node): the
 * session page names the node and the live view closes with "live on node NAME", unaudited (nothing
 * was watched). Not "not live": the auditor is told where to look.
 */
describe('live view of a session recorded on another node', () => {
  let f: WebFixture;
  let port: number;
  let cookie: string;

  beforeAll(async () => {
    f = await startWeb();
    await f.app.listen({ host: '127.0.0.1', port: 0 });
    port = (f.app.server.address() as AddressInfo).port;
    await f.store.sessions.open({ id: 'sess-b', user: 'op', keyFingerprint: 'SHA256:x', sourceAddr: '10.9.9.9', mode: 'command', node: 'edge-2/w1' });
    await f.store.sessions.openChannel({ sessionId: 'sess-b', channel: 0, kind: 'shell', command: null, pty: true, host: 'web1', login: 'deploy' });
    // The row names the spool file that node writes; no such file on this machine.
    await f.store.recordings.open({ sessionId: 'sess-b', channel: 0, path: '2026/11/24/sess-b-0.cast', kind: 'terminal' });
    cookie = (await login(f, 'aud', { from: '10.1.0.9' })).jar.header;
  });
  afterAll(async () => { await f?.close(); });

  function closeOf(url: string): Promise<{ code: number; reason: string; frames: number }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${url}`, { headers: { cookie, origin: `http://127.0.0.1:${port}` } });
      let frames = 0;
      ws.on('message', () => { frames++; });
      ws.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString(), frames }));
      ws.on('error', reject);
    });
  }

  it('the session page says which node holds it', async () => {
    const jar = { header: cookie, take: () => undefined } as unknown as Parameters<typeof get>[1];
    const page = (await get(f, jar, '/sessions/sess-b')).body;
    expect(page).toContain('id="live-elsewhere"');
    expect(page).toContain('Live on node edge-2/w1');
    expect(page).not.toContain('data-live="/live/');
  });

  it('the live view closes with "live on node NAME", sends nothing and audits nothing', async () => {
    const before = (await f.store.audit.list({ type: 'web.live_view' })).length;
    expect(await closeOf('/live/sess-b/0')).toEqual({ code: 1000, reason: 'live on node edge-2/w1', frames: 0 });
    expect((await f.store.audit.list({ type: 'web.live_view' })).length).toBe(before);
    // A channel with no open recording is simply not live.
    expect(await closeOf('/live/sess-b/1')).toEqual({ code: 1000, reason: 'not live', frames: 0 });
  });
});
