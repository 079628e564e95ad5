import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/shared/logger.js';
import { startRequestNotifier, SIGNATURE_HEADER } from '../../../src/notify/webhook.js';
import type { Store } from '../../../src/store/types.js';
import { admin, tempStore, T0 } from '../../helpers/store.js';

interface Hit { body: string; signature: string }
const servers: http.Server[] = [];
const opened: Store[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const st of opened.splice(0)) st.close();
});

/** A local receiver that fails the first `failFirst` deliveries with 500. */
async function receiver(failFirst = 0): Promise<{ url: string; hits: Hit[] }> {
  const hits: Hit[] = [];
  let seen = 0;
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      seen++;
      if (seen <= failFirst) { res.statusCode = 500; res.end(); return; }
      hits.push({ body, signature: String(req.headers[SIGNATURE_HEADER]) });
      res.end('ok');
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`, hits };
}

const SECRET = 'test-webhook-secret';
const verify = (h: Hit) => h.signature === `sha256=${createHmac('sha256', SECRET).update(h.body).digest('hex')}`;

async function setup(url: string, format: 'json' | 'slack' = 'json') {
  const t = tempStore();
  opened.push(t.store);
  await t.store.users.add('bob', ['operator'], admin);
  await t.store.hosts.add({ name: 'web1', address: '127.0.0.1', port: 22, groups: [], hostKey: null, hostKeyFingerprint: null }, admin);
  const config = configSchema.parse({ requests: { webhook: { url, secretEnv: 'GH_TEST_HOOK', format } }, web: { origin: 'https://gh.example.com' } });
  const log = createLogger({ level: 'silent', format: 'json' });
  const n = await startRequestNotifier({ store: t.store, config, log, env: { GH_TEST_HOOK: SECRET }, intervalMs: 60_000, backoffMs: [50, 100] });
  return { ...t, n };
}

describe('request webhook', () => {
  it('POSTs each new request and decision, HMAC-signed over the body, with a link; retries a failing receiver', async () => {
    const rx = await receiver(1);
    const { store, n } = await setup(rx.url);
    const { request } = await store.requests.create({ user: 'bob', login: 'root', target: { kind: 'host', name: 'web1' }, reason: 'disk full', durationMs: 20_000, expiresAt: T0 + 3_600_000 }, { maxOpen: 3 });
    await n.poll();
    await n.idle();
    await store.requests.decide(request.id, { kind: 'deny', by: 'carol', reason: 'not now' }, { approvals: 1 });
    await n.poll();
    await n.idle();
    await n.stop();
    expect(rx.hits.length).toBe(2);
    for (const h of rx.hits) expect(verify(h)).toBe(true);
    expect(JSON.parse(rx.hits[0]!.body)).toMatchObject({ id: request.id, user: 'bob', target: 'root@web1', reason: 'disk full', durationMs: 20_000, decision: 'created', link: `https://gh.example.com/requests/${request.id}` });
    expect(JSON.parse(rx.hits[1]!.body)).toMatchObject({ decision: 'denied', by: 'carol', reason: 'not now' });
    // A body changed in transit no longer matches its signature.
    expect(verify({ ...rx.hits[0]!, body: rx.hits[0]!.body.replace('disk', 'DISK') })).toBe(false);
  });

  it('gives up after the bounded retries without blocking or throwing; slack format carries text', async () => {
    const rx = await receiver(100);
    const { store, n } = await setup(rx.url, 'slack');
    await store.requests.create({ user: 'bob', login: 'root', target: { kind: 'host', name: 'web1' }, reason: '<!channel> hi', durationMs: 20_000, expiresAt: T0 + 3_600_000 }, { maxOpen: 3 });
    await n.poll();
    await n.idle();
    await n.stop();
    expect(rx.hits.length).toBe(0);
    const ok = await receiver(0);
    const second = await setup(ok.url, 'slack');
    await second.store.requests.create({ user: 'bob', login: 'root', target: { kind: 'host', name: 'web1' }, reason: '<!channel> hi', durationMs: 20_000, expiresAt: T0 + 3_600_000 }, { maxOpen: 3 });
    await second.n.poll();
    await second.n.idle();
    await second.n.stop();
    const body = JSON.parse(ok.hits[0]!.body) as { text: string };
    expect(body.text).toContain('&lt;!channel&gt;');
  });
});
