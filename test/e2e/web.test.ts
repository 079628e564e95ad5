import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium } from '../helpers/browser.js';
import { ROOT, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { shellQuote, Tmux } from '../helpers/tmux.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
const PASSWORD = 'auditors-passphrase-1';
type AuditRow = { type: string; actor: string; data: Record<string, unknown> };

describe.runIf(haveOpenSsh() && haveChromium())('web UI in a real browser', () => {
  let w: World;
  let alice: Operator;
  let ada: Operator;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
    ghOk(w.data, ['user', 'password', 'alice'], { input: `${PASSWORD}\n` });
    ada = w.operator('ada', { roles: ['auditor', 'admin'] });
    ghOk(w.data, ['user', 'password', 'ada'], { input: `${PASSWORD}\n` });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await w?.stop();
  });

  const code = (op: Operator) => execFileSync('oathtool', ['--totp', '-b', op.secret], { encoding: 'utf8' }).trim();

  async function logIn(op: Operator): Promise<void> {
    await page.goto(`${w.web}/login`);
    await page.fill('input[name=username]', op.name);
    await page.fill('input[name=password]', PASSWORD);
    await page.fill('input[name=code]', code(op));
    await page.click('button[type=submit]');
  }

  it('an operator account cannot log in', async () => {
    await logIn(alice);
    await page.waitForURL(/\/login\?error=1$/);
    expect(await page.textContent('.error')).toContain('Login refused');
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'web.login_failed']).at(-1)!.data).toMatchObject({ user: 'alice', reason: 'not_auditor' });
  });

  it('an auditor logs in with a TOTP code, finds a session by a word it printed, and sees it replayed', async () => {
    const r = await w.ssh(alice, [`${w.login}@target1`, 'echo "the zebra-unicorn-42 was here"']);
    expect(r.stdout).toContain('zebra-unicorn-42');
    const sid = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).at(-1)!.data.session as string;
    await expect.poll(() => ghJson<{ recordings: { state: string }[] }>(w.data, ['sessions', 'show', sid]).recordings[0]?.state, { timeout: 10_000 }).toBe('closed');

    await logIn(ada);
    await page.waitForURL(/\/sessions$/);
    await page.fill('input[name=q]', 'unicorn-42');
    await page.click('form.filters button[type=submit]');
    await page.waitForSelector(`a[href^="/sessions/${sid}"]`);
    await page.click(`a[href^="/sessions/${sid}"]`);
    await page.waitForURL(new RegExp(`/sessions/${sid}\\?channel=0&t=`));
    await expect.poll(async () => (await page.locator('#player').innerText()).includes('zebra-unicorn-42'), { timeout: 15_000 }).toBe(true);
    expect(await page.textContent('#integrity')).toContain('intact');
    await page.screenshot({ path: path.join(ARTIFACTS, 'session-page.png'), fullPage: true });
    // The export bundle: a tar whose .cast matches the file on the bastion byte for byte.
    const bundle = await page.request.get(`${w.web}/sessions/${sid}/export.tar`);
    expect(bundle.status()).toBe(200);
    const tarFile = path.join(ARTIFACTS, 'export.tar');
    fs.writeFileSync(tarFile, await bundle.body());
    const listing = execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' });
    expect(listing.split('\n').filter(Boolean).sort()).toEqual([`${sid}/${sid}-0.cast`, `${sid}/manifest.json`].sort());
    const cast = execFileSync('tar', ['-xOf', tarFile, `${sid}/${sid}-0.cast`]);
    expect(cast.toString()).toContain('zebra-unicorn-42');
    // The bundle's manifest is the one `gatehouse sessions export` writes (only who and when differ).
    type Manifest = { exportedAt: string; exportedBy: string; recordings: { file: string; sha256: string; verdict: string }[] };
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', tarFile, `${sid}/manifest.json`], { encoding: 'utf8' })) as Manifest;
    expect(manifest.recordings).toEqual([expect.objectContaining({ file: `${sid}-0.cast`, verdict: 'intact', sha256: createHash('sha256').update(cast).digest('hex') })]);
    expect(manifest.exportedBy).toBe('web:ada');
    const cli = ghJson<Manifest>(w.data, ['sessions', 'export', sid, '--out', path.join(tempDir(), 'out')]);
    expect({ ...manifest, exportedAt: '', exportedBy: '' }).toEqual({ ...cli, exportedAt: '', exportedBy: '' });
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.viewed']).some((e) => e.data.session === sid && e.data.how === 'web')).toBe(true);
  });

  it('a live session streams into the page, and an admin ends it from the browser', async () => {
    const running = w.ssh(alice, [`${w.login}@target1`, 'for i in $(seq 1 60); do echo live-line-$i; sleep 0.5; done'], { timeoutMs: 60_000 });
    await expect.poll(() => ghJson<unknown[]>(w.data, ['sessions', 'list', '--live', '--user', 'alice']).length, { timeout: 15_000 }).toBe(1);
    const sid = ghJson<{ id: string }[]>(w.data, ['sessions', 'list', '--live', '--user', 'alice'])[0]!.id;
    await page.goto(`${w.web}/sessions/${sid}`);
    // Late joiner: the lines printed so far appear at once, then new ones as they come.
    await expect.poll(async () => /live-line-\d+/.test(await page.locator('#player').innerText()), { timeout: 15_000 }).toBe(true);
    const lastLine = async () => Math.max(...[...(await page.locator('#player').innerText()).matchAll(/live-line-(\d+)/g)].map((m) => Number(m[1])));
    const before = await lastLine();
    const t0 = Date.now();
    await expect.poll(lastLine, { timeout: 5000, interval: 50 }).toBeGreaterThan(before);
    console.log(`live view: a new line showed ${Date.now() - t0} ms after the previous one was seen`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'live-session.png'), fullPage: true });

    // Watching live is audited, with who watched which channel.
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'web.live_view']).at(-1)!.data).toMatchObject({ user: 'ada', session: sid, channel: 0, sessionUser: 'alice' });

    // Searchable while it runs (indexed in steps, recording.liveIndexEvery: 2 s by default): the web
    // list links to the moment, the CLI gives the same answer.
    type Found = { sessions: { id: string; status: string; hit: { channel: number; t: number; line: string } | null }[] };
    await expect.poll(async () => (await (await page.request.get(`${w.web}/sessions?q=live-line-`)).text()).includes(`href="/sessions/${sid}?channel=0&amp;t=`), { timeout: 15_000 }).toBe(true);
    const live = ghJson<Found>(w.data, ['sessions', 'search', 'live-line-', '--json']).sessions.filter((x) => x.id === sid);
    expect(live).toEqual([expect.objectContaining({ status: 'live', hit: expect.objectContaining({ channel: 0, line: expect.stringMatching(/^live-line-\d+$/) }) })]);

    await page.click('#end-session');
    const r = await running;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('gatehouse: session ended by an administrator');
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'admin.session.kill']).at(-1)).toMatchObject({ actor: 'web:ada' });
    // At close the exact text replaces the steps: still one hit, the session now ended, its first line first.
    await expect.poll(() => ghJson<Found>(w.data, ['sessions', 'search', 'live-line-', '--json']).sessions.filter((x) => x.id === sid).map((x) => x.status), { timeout: 10_000 }).toEqual(['terminated']);
    expect(ghJson<Found>(w.data, ['sessions', 'search', 'live-line-', '--json']).sessions.find((x) => x.id === sid)!.hit!.line).toBe('live-line-1');
  });

  it('a session page opened at the menu waits, and shows the player once a target is chosen; its reloads are one view', async () => {
    // alice logged in within auth.mfaGrace: the menu comes without a TOTP prompt.
    const t = new Tmux(80, 24);
    const args = ['-F', '/dev/null', '-p', String(w.port), '-i', alice.key, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${w.knownHosts}`, '-t', 'alice@127.0.0.1'];
    try {
      t.start(`ssh ${args.map(shellQuote).join(' ')}`, { SSH_ASKPASS: '/bin/false', SSH_ASKPASS_REQUIRE: 'never' });
      await t.waitFor(/choose a target/);
      const sid = ghJson<{ id: string }[]>(w.data, ['sessions', 'list', '--live', '--user', 'alice'])[0]!.id;
      await page.goto(`${w.web}/sessions/${sid}`);
      expect(await page.locator('#live-waiting').innerText()).toMatch(/no channel open yet/);
      // Two reloads while it waits (app.js counts them in sessionStorage), then the target.
      const reloads = () => page.evaluate('Number(sessionStorage.getItem("gatehouse-wait:" + location.pathname + location.search) || 0)').then(Number).catch(() => 0);
      await expect.poll(reloads, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
      t.keys('Enter');
      await t.waitFor(/[#$]\s*$/m);
      // web/app.js reloads the page; once the channel is open it is the live player.
      await page.waitForSelector('#player', { timeout: 20_000 });
      const views = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.viewed']).filter((e) => e.data.session === sid && e.actor === 'web:ada');
      expect(views).toHaveLength(2); // the waiting page once, however often it reloaded, then the player
      t.type('exit\n');
      await t.waitFor(/EXIT=0/);
    } finally {
      t.kill();
    }
  });

  it('a WebSocket upgrade from another origin is refused; Log out ends the web session and the old cookie opens nothing', async () => {
    await page.goto(`${w.web}/sessions`);
    await page.waitForURL(/\/sessions$/);
    const cookie = (await page.context().cookies()).filter((c) => c.name.startsWith('gh_')).map((c) => `${c.name}=${c.value}`).join('; ');
    const url = new URL(w.web);
    const wsStatus = (origin: string) => new Promise<number>((resolve, reject) => {
      const req = http.request({
        agent: false, host: url.hostname, port: Number(url.port), path: '/live/none/0',
        headers: { cookie, Origin: origin, Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') },
      });
      const timer = setTimeout(() => { req.destroy(); reject(new Error('no answer to the upgrade')); }, 5000);
      req.on('response', (res) => { clearTimeout(timer); res.resume(); resolve(res.statusCode!); });
      req.on('upgrade', (_res, socket) => { clearTimeout(timer); socket.destroy(); resolve(101); });
      req.on('error', (err) => { clearTimeout(timer); reject(err); });
      req.end();
    });
    expect(await wsStatus('http://evil.example')).toBe(403);
    expect(await wsStatus(url.origin)).toBe(101);

    await page.click('#logout');
    await page.waitForURL(/\/login$/);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'web.logout']).at(-1)!.data).toMatchObject({ user: 'ada' });
    const res = await fetch(`${w.web}/sessions`, { headers: { cookie }, redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/login');
    await page.goto(`${w.web}/sessions`);
    await page.waitForURL(/\/login$/);
  });
});
