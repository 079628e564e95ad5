import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium } from '../helpers/browser.js';
import { gh, ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { codeAfter } from '../helpers/totp.js';
import { runSshUntil, startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

/**
 * Issue 18 end to end: bob has no grant; he asks for root-equivalent access for 20 s; the webhook
 * receiver gets it, signed; bob cannot approve his own; an approver approves in the browser with a
 * fresh TOTP code;
 * bob's session runs, is recorded, and ends on its own 20 s after the approval; a denied request
 * leaves him refused; revoking an approved request ends a live session; the chain verifies.
 */
type AuditRow = { type: string; actor: string; data: Record<string, unknown> };
type Hit = { body: string; signature: string };

const SECRET = 'e2e-request-webhook-secret';
const PASSWORD = 'approvers-passphrase-1';

const totp = (op: Operator) => execFileSync('oathtool', ['--totp', '-b', op.secret], { encoding: 'utf8' }).trim();
const signed = (h: Hit) => h.signature === `sha256=${createHmac('sha256', SECRET).update(h.body).digest('hex')}`;

describe.runIf(haveOpenSsh() && haveChromium())('just-in-time access requests', () => {
  let w: World;
  let bob: Operator;
  let carol: Operator;
  let browser: Browser;
  let page: Page;
  let carolStep = 0;
  const hits: Hit[] = [];
  let hook: http.Server;

  beforeAll(async () => {
    hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => { hits.push({ body, signature: String(req.headers['x-gatehouse-signature']) }); res.end('ok'); });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    process.env.GH_E2E_REQUEST_HOOK = SECRET;
    w = await startWorld({
      config: [
        'auth:', '  mfaGrace: 1h',
        'requests:', '  webhook:', `    url: http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`, '    secretEnv: GH_E2E_REQUEST_HOOK', '',
      ].join('\n'),
    });
    // bob is an operator and an approver too: he still cannot approve his own request.
    bob = w.operator('bob', { roles: ['operator', 'approver'] });
    carol = w.operator('carol', { roles: ['approver'] });
    ghOk(w.data, ['user', 'password', 'carol'], { input: `${PASSWORD}\n` });
    browser = await launchChromium();
    page = await browser.newPage();
    // carol logs in to the web UI (an approver-only account lands on the Requests page).
    await page.goto(`${w.web}/login`);
    await page.fill('input[name=username]', 'carol');
    await page.fill('input[name=password]', PASSWORD);
    await page.fill('input[name=code]', totp(carol));
    // Read after the code: never below the step the login used.
    carolStep = Math.floor(Date.now() / 30_000);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/requests$/);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await w?.stop();
    await new Promise((r) => hook?.close(r));
    delete process.env.GH_E2E_REQUEST_HOOK;
  });

  const target = () => `${w.login}@target1`;
  const request = (args: string[], timeoutMs = 30_000) => w.ssh(bob, ['request', ...args], { timeoutMs });
  const idOf = (r: SshResult) => Number(/request #(\d+)/.exec(r.stdout)?.[1]);
  const state = (id: number) => ghJson<{ state: string }>(w.data, ['request', 'show', String(id)]).state;
  const notices = () => hits.map((h): Record<string, unknown> => ({ ...(JSON.parse(h.body) as Record<string, unknown>), signed: signed(h) }));

  it('bob is refused, requests 20 s, cannot approve his own; carol approves; his session runs, is recorded and ends 20 s later', async () => {
    const refused = await w.ssh(bob, [target(), 'echo hi']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/no grant gives bob access to target1/);

    const made = await request([target(), '--for', '20s', '--reason', 'disk full on /var']);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/request #\d+ created: .*@target1 for 20s/);
    expect(made.stdout).toMatch(/who can approve: carol \(approver role\)/);
    const id = idOf(made);
    // The same request sent twice is the same request.
    const twice = await request([target(), '--for', '20s', '--reason', 'disk full on /var']);
    expect(twice.stdout).toMatch(new RegExp(`request #${id} for .* is already pending`));

    await expect.poll(() => notices().find((n) => n.id === id && n.decision === 'created'), { timeout: 10_000 }).toMatchObject({
      user: 'bob', target: target(), reason: 'disk full on /var', durationMs: 20_000, signed: true,
    });

    const own = gh(w.data, ['request', 'approve', String(id), '--as', 'bob']);
    expect(own.code).toBe(1);
    expect(own.stderr).toMatch(/bob cannot approve their own request/);
    expect(state(id)).toBe('pending');
    expect(gh(w.data, ['request', 'approve', String(id), '--as', 'carol', '--for', '1h']).stderr).toMatch(/shorten the access, not lengthen/);

    // carol approves in the browser with a fresh code: the one she logged in with is spent, so the
    // step after it (accepted at once as one step of clock skew, instead of waiting for the clock).
    await page.goto(`${w.web}/requests`);
    await page.click(`a[href="/requests/${id}"]`);
    await page.fill('#approve input[name=code]', codeAfter(carol.secret, carolStep));
    await page.fill('#approve input[name=reason]', 'go ahead');
    await page.click('#approve button[type=submit]');
    await page.waitForURL(new RegExp(`/requests/${id}$`));
    expect(await page.textContent('#state')).toBe('approved');
    const shown = ghJson<{ grant: number; until: string }>(w.data, ['request', 'show', String(id)]);
    const grant = shown.grant;
    const until = Date.parse(shown.until);
    // 20 s from the approval.
    expect(until - Date.now()).toBeLessThanOrEqual(20_000);
    expect(ghJson<{ id: number; createdBy: string }[]>(w.data, ['grant', 'list', '--user', 'bob']).map((g) => g.id)).toEqual([grant]);

    const live = w.ssh(bob, [target(), 'echo started; sleep 60; echo finished'], { timeoutMs: 90_000 });
    const r = await live;
    const endedAt = Date.now();
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toMatch(/gatehouse: your access to target1 has expired/);
    expect(r.code).not.toBe(0);
    // It ran until the grant ended (20 s after the approval), not until the command finished.
    expect(endedAt).toBeGreaterThanOrEqual(until);
    const channel = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel', '--user', 'bob']).at(-1)!;
    expect(channel.data.grant).toBe(grant);
    const sid = channel.data.session as string;
    const ended = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.terminated']).filter((e) => e.data.session === sid);
    expect(ended.map((e) => e.data.reason)).toEqual(['grant_expired']);
    await expect.poll(() => ghJson<{ endedAt: string | null }>(w.data, ['sessions', 'show', sid]).endedAt, { timeout: 10_000 }).not.toBeNull();
    const v = ghJson<{ recordings: { items: { verdict: string }[] } }>(w.data, ['verify', sid]);
    expect(v.recordings.items.map((i) => i.verdict)).toEqual(['intact']);

    expect((await w.ssh(bob, [target(), 'echo hi'])).stderr).toMatch(/has expired/);
    await expect.poll(() => notices().find((n) => n.id === id && n.decision === 'approved'), { timeout: 10_000 }).toMatchObject({ by: 'web:carol', signed: true });
  }, 180_000);

  it('a denied request leaves him refused; --wait prints the decision', async () => {
    const waiting = request([target(), '--for', '10m', '--reason', 'again', '--wait'], 60_000);
    let id = 0;
    await expect.poll(() => {
      id = ghJson<{ id: number; state: string; reason: string }[]>(w.data, ['request', 'list', '--state', 'pending', '--user', 'bob']).find((q) => q.reason === 'again')?.id ?? 0;
      return id;
    }, { timeout: 20_000 }).toBeGreaterThan(0);
    ghOk(w.data, ['request', 'deny', String(id), '--as', 'carol', '--reason', 'use the runbook']);
    const r = await waiting;
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`request #${id} denied by carol: use the runbook`));
    expect((await w.ssh(bob, [target(), 'echo hi'])).code).toBe(1);
    await expect.poll(() => notices().find((n) => n.id === id && n.decision === 'denied'), { timeout: 10_000 }).toMatchObject({ signed: true, reason: 'use the runbook' });
  }, 120_000);

  it('revoking an approved request ends the live session it allowed', async () => {
    const made = await request([target(), '--for', '1h', '--reason', 'deploy']);
    const id = idOf(made);
    ghOk(w.data, ['request', 'approve', String(id)]);
    const c = w.sshCommand(bob, [target(), 'echo started; sleep 60; echo finished']);
    const { seen, done: live } = runSshUntil(c.args, c.env, /^started$/m, 90_000);
    expect(await seen).toBe(true);
    ghOk(w.data, ['request', 'revoke', String(id), '--reason', 'done']);
    const r = await live;
    expect(r.stdout).toBe('started\n');
    expect(r.stderr).toMatch(/access revoked by an administrator/);
    expect(state(id)).toBe('revoked');
    // The grant of the first (expired) request is still listed: the end is a revocation all the same.
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.terminated']).at(-1)!.data.reason).toBe('no_grant');
    // Already granted is said, not requested, while a grant covers it.
    const g = ghOk(w.data, ['grant', 'add', '--user', 'bob', '--host', 'target1', '--login', w.login, '--for', '10m']);
    const again = await request([target(), '--reason', 'x']);
    expect(again.stdout).toMatch(/already granted/);
    ghOk(w.data, ['grant', 'remove', /#(\d+)/.exec(g)![1]!]);
  }, 120_000);

  it('refuses what an attacker sends first, and a host named "request" is a target like any other', async () => {
    for (const [args, msg] of [
      [[target(), '--reason', 'x', '--user', 'carol'], /unknown option "--user"/],
      [[target(), '--for', '3650d', '--reason', 'x'], /longer than allowed/],
      [[target(), '--for', '-1h', '--reason', 'x'], /not a duration/],
      [[target(), '--reason', 'a'.repeat(2000)], /longer than 500/],
      [[target(), '--reason', 'a\u001b]0;pwned\u0007b'], /control characters/],
      [[target()], /reason is required/],
    ] as [string[], RegExp][]) {
      const r = await request(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    // Cancelling is the requester's alone; someone else's id is answered like a missing one.
    const dave = w.operator('dave');
    const theirs = idOf(await w.ssh(dave, ['request', target(), '--reason', 'mine']));
    const notMine = await request(['cancel', String(theirs)]);
    expect(notMine.code).toBe(1);
    expect(notMine.stderr).toMatch(new RegExp(`you have no request #${theirs}`));
    expect(state(theirs)).toBe('pending');
    const cancelled = await w.ssh(dave, ['request', 'cancel', String(theirs), '--reason', 'not needed']);
    expect(cancelled.stdout).toMatch(new RegExp(`request #${theirs} cancelled`));
    expect(state(theirs)).toBe('cancelled');
    expect((await request(['list'])).stdout).not.toMatch(/mine/);

    ghOk(w.data, ['host', 'add', 'request', '--address', '127.0.0.1', '--port', String(w.sshd.port), '--host-key', w.sshd.hostKey]);
    const g = ghOk(w.data, ['grant', 'add', '--user', 'bob', '--host', 'request', '--login', w.login, '--for', '10m']);
    const r = await w.ssh(bob, [`${w.login}@request`, 'echo via-request-host']);
    expect(r.stdout).toBe('via-request-host\n');
    ghOk(w.data, ['grant', 'remove', /#(\d+)/.exec(g)![1]!]);

    // Every step is in the audit log, and the chain verifies.
    const types = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'request']).map((e) => e.type);
    for (const t of ['request.created', 'request.approved', 'request.denied', 'request.revoked', 'request.cancelled']) expect(types).toContain(t);
    const fromRequest = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'admin.grant.add']).filter((e) => String(e.data.source ?? '').startsWith('request:'));
    expect(fromRequest.length).toBe(2);
    expect(gh(w.data, ['verify']).code).toBe(0);
    expect(notices().every((n) => n.signed)).toBe(true);
  }, 120_000);
});
