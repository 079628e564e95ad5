import fs from 'node:fs';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghJson, ghOk } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { totpAt } from '../helpers/totp.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

/**
 * The login's two factors under attack, driven by ssh2 client scripts (OpenSSH will not park a
 * connection at the prompt on command): a stolen key used on many connections at once, and an
 * admin's revocation landing between the key and the code. Codes come from the test's own TOTP.
 */
type AuditRow = { type: string; data: Record<string, unknown> };
/** One user's auth rows, read once (each CLI run costs seconds on a loaded machine). */
function authRows(w: World, user: string) {
  const rows = ghJson<AuditRow[]>(w.data, ['audit', '--user', user]);
  return {
    failures: rows.filter((r) => r.type === 'auth.failure').map((r) => r.data.reason),
    locks: rows.filter((r) => r.type === 'auth.locked').length,
    successes: rows.filter((r) => r.type === 'auth.success').length,
  };
}
const audit = (w: World, type: string) => ghJson<AuditRow[]>(w.data, ['audit', '--type', type]);

const rightCode = (op: Operator) => totpAt(op.secret, Math.floor(Date.now() / 1000));
/** A code that is wrong at every step the server accepts now (±1 step) and in the next one. */
function wrongCode(op: Operator): string {
  const t = Math.floor(Date.now() / 1000);
  const valid = new Set([-60, -30, 0, 30, 60].map((d) => totpAt(op.secret, t + d)));
  return ['000000', '111111', '222222', '333333', '444444', '555555'].find((c) => !valid.has(c))!;
}

type Outcome = 'prompt' | 'ready' | 'refused';

/** One client connection: the key, then keyboard-interactive, with the test answering each prompt. */
class Login {
  private readonly client = new ssh2.Client();
  private readonly prompts: ((answers: string[]) => void)[] = [];
  private taken = 0;
  private wake: (() => void) | null = null;
  readonly done: Promise<'ready' | 'refused'>;

  constructor(w: World, op: Operator, from: string, username = op.name) {
    this.done = new Promise((resolve) => {
      this.client.on('ready', () => resolve('ready'));
      this.client.on('error', () => resolve('refused'));
      this.client.on('close', () => resolve('refused'));
    });
    void this.done.then(() => this.wake?.());
    this.client.connect({
      host: '127.0.0.1', port: w.port, localAddress: from, username, readyTimeout: 60_000, hostVerifier: () => true,
      authHandler: (methodsLeft: string[] | null, partial: boolean | null) => {
        if (methodsLeft === null) return { type: 'publickey', username, key: fs.readFileSync(op.key) };
        if (partial && methodsLeft.includes('keyboard-interactive')) {
          return {
            type: 'keyboard-interactive', username,
            prompt: (_n: string, _i: string, _l: string, _p: unknown, finish: (answers: string[]) => void) => {
              this.prompts.push(finish);
              this.wake?.();
            },
          };
        }
        return false;
      },
    } as ssh2.ConnectConfig);
  }

  /** Resolves once the server asks for a code, or the login ended instead. */
  async next(): Promise<Outcome> {
    for (let i = 0; i < 100; i++) {
      if (this.prompts.length > this.taken) return 'prompt';
      const settled = await Promise.race([this.done, new Promise<null>((r) => { this.wake = () => r(null); })]);
      this.wake = null;
      if (this.prompts.length > this.taken) return 'prompt';
      if (settled !== null) return settled;
    }
    throw new Error('no prompt and no outcome');
  }

  /** Answer the waiting prompt; then the next prompt (wrong code), or how the login ended. */
  async answer(code: string): Promise<Outcome> {
    expect(await this.next()).toBe('prompt');
    this.prompts[this.taken++]!([code]);
    return this.next();
  }

  close(): void {
    this.client.end();
  }
}

describe.runIf(haveOpenSsh())('login hardening: lockout, prompt cap, changes between the factors', () => {
  let w: World;
  const open: Login[] = [];
  const login = (op: Operator, from: string, username?: string) => {
    const l = new Login(w, op, from, username);
    open.push(l);
    return l;
  };

  beforeAll(async () => {
    w = await startWorld({ config: 'ssh:\n  loginGraceTime: 2m\nauth:\n  maxPendingMfa: 3\n  lockout:\n    failures: 3\n' });
  }, 240_000);
  afterAll(async () => {
    for (const l of open) l.close();
    await w?.stop();
    if (w) for (const d of [w.dir, w.sshd.dir]) fs.rmSync(d, { recursive: true, force: true });
  }, 120_000);

  it('a stolen key cannot out-guess the lockout over many connections', async () => {
    const mallory = w.operator('mallory');
    // Three connections pass the key and wait at the prompt: the cap (3) is reached.
    const [a, b, c] = [login(mallory, '127.0.0.2'), login(mallory, '127.0.0.3'), login(mallory, '127.0.0.4')];
    expect(await Promise.all([a.next(), b.next(), c.next()])).toEqual(['prompt', 'prompt', 'prompt']);
    // A fourth is refused at the key step, audited.
    const d = login(mallory, '127.0.0.5');
    expect(await d.next()).toBe('refused');
    expect(authRows(w, 'mallory').failures).toEqual(['too_many_pending_mfa']);

    // Two of them guess at the same time until the user is locked (3 failures).
    const bad = wrongCode(mallory);
    expect(await Promise.all([a.answer(bad), b.answer(bad)])).toEqual(['prompt', 'prompt']);
    expect((await Promise.all([a.answer(bad), b.answer(bad)])).sort()).toEqual(['refused', 'refused']);
    // The connection that reached the prompt before the lock: the right code is refused.
    expect(await c.answer(rightCode(mallory))).toBe('refused');
    const after = authRows(w, 'mallory');
    // The count is shared and exact: one lock, and the answer after it is not counted as a guess.
    expect(after.locks).toBe(1);
    expect(after.failures).toEqual(['too_many_pending_mfa', 'wrong_code', 'wrong_code', 'wrong_code', 'locked', 'locked']);
    expect(after.successes).toBe(0);
  }, 240_000);

  it('a seat at the prompt is freed by a login, by a failure back to the key, and by a close', async () => {
    const trent = w.operator('trent');
    const seats = [login(trent, '127.0.1.2'), login(trent, '127.0.1.3'), login(trent, '127.0.1.4')];
    expect(await Promise.all(seats.map((s) => s.next()))).toEqual(['prompt', 'prompt', 'prompt']);
    expect(await login(trent, '127.0.1.5').next()).toBe('refused');
    // One logs in: its seat is free.
    expect(await seats[0]!.answer(rightCode(trent))).toBe('ready');
    const fourth = login(trent, '127.0.1.6');
    expect(await fourth.next()).toBe('prompt');
    // One closes while at the prompt: once the server has seen the close, a new one gets the seat.
    seats[1]!.close();
    let got: Outcome = 'refused';
    for (let i = 0; i < 20 && got !== 'prompt'; i++) {
      const l = login(trent, `127.0.2.${10 + i}`);
      got = await l.next();
      if (got !== 'prompt') await new Promise((r) => setTimeout(r, 250));
    }
    expect(got).toBe('prompt');
  }, 240_000);

  it.each([
    ['its key is removed', (op: Operator) => {
      const fp = ghJson<{ fingerprint: string }[]>(w.data, ['user', 'key', 'list', op.name])[0]!.fingerprint;
      ghOk(w.data, ['user', 'key', 'remove', op.name, fp]);
    }],
    ['the user is disabled', (op: Operator) => { ghOk(w.data, ['user', 'disable', op.name, '--reason', 'left']); }],
    ['the TOTP is reset', (op: Operator) => { ghOk(w.data, ['user', 'totp', 'reset', op.name]); }],
  ] as const)('a login at the prompt ends when %s before the code', async (_what, change) => {
    const name = `carol${open.length}`;
    const carol = w.operator(name);
    const l = login(carol, '127.0.3.2');
    expect(await l.next()).toBe('prompt');
    change(carol);
    expect(await l.answer(rightCode(carol))).toBe('refused');
    const rows = authRows(w, name);
    expect(rows.failures).toEqual(['changed_during_login']);
    expect(rows.successes).toBe(0);
  }, 240_000);

  it('a huge pre-auth user name is cut in the audit row', async () => {
    const eve = w.operator('eve');
    const huge = `\u001b[2K${'x'.repeat(20_000)}`;
    expect(await login(eve, '127.0.4.2', huge).next()).toBe('refused');
    const row = audit(w, 'auth.failure').at(-1)!;
    expect(row.data.reason).toBe('key_user_mismatch');
    const user = String(row.data.user);
    expect(user.length).toBeLessThan(100);
    expect(user).toContain(`[cut, ${huge.length} chars]`);
  }, 240_000);
});
