import { execFileSync } from 'node:child_process';
import { type Browser, type CDPSession, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium } from '../helpers/browser.js';
import { ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * Issue 17, web part, in a real browser: Chromium's DevTools virtual authenticator (CTAP2 over
 * "usb", user verification on) stands in for a security key. WebAuthn needs a secure context and a
 * domain as the relying party ID (an IP address is refused), so the browser talks to the UI as
 * http://localhost:PORT.
 */
const PASSWORD = 'auditors-passphrase-1';
type AuditRow = { type: string; data: Record<string, unknown> };

describe.runIf(haveOpenSsh() && haveChromium())('web login with a security key (Chromium virtual authenticator)', () => {
  let w: World;
  let ada: Operator;
  let bea: Operator;
  let browser: Browser;
  let page: Page;
  let cdp: CDPSession;
  let authenticatorId: string;
  let web: string;

  beforeAll(async () => {
    w = await startWorld();
    web = w.web.replace('127.0.0.1', 'localhost');
    ada = w.operator('ada', { roles: ['auditor', 'admin'] });
    ghOk(w.data, ['user', 'password', 'ada'], { input: `${PASSWORD}\n` });
    bea = w.operator('bea', { roles: ['auditor'] });
    ghOk(w.data, ['user', 'password', 'bea'], { input: `${PASSWORD}\n` });
    browser = await launchChromium();
    page = await browser.newPage();
    cdp = await page.context().newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    ({ authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'usb', hasResidentKey: false, hasUserVerification: true, isUserVerified: true },
    }));
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await w?.stop();
  });

  /**
   * A TOTP code (oathtool) for a step the user has not used yet: each step is accepted once, and
   * the next step is accepted too (one step of clock skew), so a test waits (at most one step)
   * only when both are used.
   */
  const usedStep = new Map<string, number>();
  const code = async (op: Operator) => {
    const next = (usedStep.get(op.name) ?? -1) + 1;
    for (let i = 0; i < 40 && next > Math.floor(Date.now() / 30_000) + 1; i++) await new Promise((r) => setTimeout(r, 1000));
    const now = Math.floor(Date.now() / 30_000);
    const step = Math.max(now, next);
    usedStep.set(op.name, step);
    return execFileSync('oathtool', ['--totp', '-b', '-N', `@${step * 30 + 1}`, op.secret], { encoding: 'utf8' }).trim();
  };
  const logins = () => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'web.login']);
  const failed = () => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'web.login_failed']);

  async function submitLogin(op: Operator, totp: string): Promise<void> {
    await page.goto(`${web}/login`);
    await page.fill('input[name=username]', op.name);
    await page.fill('input[name=password]', PASSWORD);
    await page.fill('input[name=code]', totp);
    await page.click('button[type=submit]');
  }

  async function logOut(): Promise<void> {
    await page.click('#logout');
    await page.waitForURL(/\/login$/);
  }

  it('an auditor registers a security key with a fresh TOTP code', async () => {
    await submitLogin(ada, await code(ada));
    await page.waitForURL(/\/sessions$/);
    await page.click('a[href="/webauthn"]');
    await page.waitForURL(/\/webauthn$/);
    expect(await page.textContent('#webauthn-keys')).toContain('No security key registered');
    await page.fill('#webauthn-register input[name=code]', await code(ada));
    await page.click('#webauthn-register button[type=submit]');
    await page.waitForSelector('table#webauthn-keys', { timeout: 30_000 });
    const creds = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    expect(creds).toHaveLength(1);
    const added = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'admin.user.webauthn.add']);
    expect(added.at(-1)!.data).toMatchObject({ user: 'ada', credential: creds[0]!.credentialId.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') });
    // Still logged in: registering ends the user's other sessions, not this one.
    await page.goto(`${web}/sessions`);
    await page.waitForURL(/\/sessions$/);
    await logOut();
  }, 120_000);

  let captured = '';
  it('logs in with the password and the key, no TOTP code; again (the counter grows)', async () => {
    page.on('request', (r) => { if (r.url().endsWith('/login/webauthn')) captured = r.postData() ?? ''; });
    for (let i = 0; i < 2; i++) {
      await submitLogin(ada, '');
      await page.waitForURL(/\/sessions$/, { timeout: 30_000 });
      const ev = logins().at(-1)!;
      expect(ev.data).toMatchObject({ user: 'ada', method: 'webauthn' });
      await logOut();
    }
    const cred = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials[0]!;
    expect(cred.signCount).toBeGreaterThanOrEqual(2);
    expect(logins().filter((e) => e.data.method === 'webauthn')).toHaveLength(2);
  }, 120_000);

  it('the last assertion sent again (same browser, same CSRF cookie) is refused and audited; TOTP still works', async () => {
    expect(captured).toContain('attempt=');
    const res = await page.request.post(`${web}/login/webauthn`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' }, data: captured, maxRedirects: 0,
    });
    expect(res.status()).toBe(303);
    expect(res.headers().location).toBe('/login?error=1');
    expect(failed().at(-1)!.data).toMatchObject({ user: 'ada', reason: 'webauthn_challenge_reused' });
    expect(logins().filter((e) => e.data.user === 'ada')).toHaveLength(3);
    await submitLogin(ada, await code(ada));
    await page.waitForURL(/\/sessions$/);
    expect(logins().at(-1)!.data).toMatchObject({ user: 'ada', method: 'totp' });
    await logOut();
  }, 120_000);

  it('a user without a registered key still needs the TOTP code', async () => {
    await submitLogin(bea, '');
    await page.waitForURL(/\/login\?error=1$/);
    expect(await page.$('#webauthn-login')).toBeNull();
    expect(failed().at(-1)!.data).toMatchObject({ user: 'bea', reason: 'bad_code_format' });
    await submitLogin(bea, await code(bea));
    await page.waitForURL(/\/sessions$/);
    expect(logins().at(-1)!.data).toMatchObject({ user: 'bea', method: 'totp' });
  }, 120_000);
});
