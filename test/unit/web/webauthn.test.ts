import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/shared/clock.js';
import { WebauthnChallenges } from '../../../src/web/webauthn.js';
import { totpAt } from '../../helpers/totp.js';
import { csrfIn, get, Jar, login, PASSWORD, post, SECRET, startWeb, type WebFixture } from './fixture.js';

/**
 * Issue 17, web part: WebAuthn instead of the TOTP code. A software authenticator (P-256, "none"
 * attestation, built here with the library's CBOR encoder) stands in for the browser's; the e2e
 * test (test/e2e/webauthn.test.ts) does the same with Chromium's virtual authenticator.
 */
const ORIGIN = 'http://gh.test';
const RP_ID = 'gh.test';
const b64u = (b: Buffer) => b.toString('base64url');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

class SoftKey {
  readonly id = randomBytes(16);
  private readonly key: KeyObject;
  readonly cose: Uint8Array;
  counter = 0;
  constructor(readonly origin = ORIGIN, readonly rpId = RP_ID) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.key = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    this.cose = isoCBOR.encode(new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x!, 'base64url')], [-3, Buffer.from(jwk.y!, 'base64url')]]));
  }
  private clientData(type: string, challenge: string, origin = this.origin) {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }
  register(options: { challenge: string }) {
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(this.id.length);
    const authData = Buffer.concat([sha256(this.rpId), Buffer.from([0x45]), Buffer.alloc(4), Buffer.alloc(16), idLen, this.id, Buffer.from(this.cose)]);
    const att = isoCBOR.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]) as never);
    return JSON.stringify({
      id: b64u(this.id), rawId: b64u(this.id), type: 'public-key', clientExtensionResults: {},
      response: { clientDataJSON: b64u(this.clientData('webauthn.create', options.challenge)), attestationObject: b64u(Buffer.from(att)), transports: ['usb'] },
    });
  }
  assert(challenge: string, o: { counter?: number; flags?: number; origin?: string } = {}) {
    this.counter = o.counter ?? this.counter + 1;
    const c = Buffer.alloc(4);
    c.writeUInt32BE(this.counter);
    const authData = Buffer.concat([sha256(this.rpId), Buffer.from([o.flags ?? 0x05]), c]);
    const cd = this.clientData('webauthn.get', challenge, o.origin);
    const signature = sign('sha256', Buffer.concat([authData, sha256(cd)]), this.key);
    return JSON.stringify({
      id: b64u(this.id), rawId: b64u(this.id), type: 'public-key', clientExtensionResults: {},
      response: { clientDataJSON: b64u(cd), authenticatorData: b64u(authData), signature: b64u(signature) },
    });
  }
}

const optionsIn = (body: string) => {
  const m = /data-options="([^"]+)"/.exec(body);
  if (!m) throw new Error('no WebAuthn options in the page');
  return JSON.parse(m[1]!.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')) as { challenge: string; rpId?: string; allowCredentials?: { id: string }[] };
};
const field = (body: string, name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(body)?.[1] ?? '';

let f: WebFixture;
const failures = (user: string) => f.one<{ n: number }>('SELECT count(*) AS n FROM auth_failures a JOIN users u ON u.id = a.user_id WHERE u.name = ?', user)!.n;
const lastFailure = async () => (await f.store.audit.list({ type: 'web.login_failed' })).at(-1)!.data;

/** Register a key for a logged-in user through the page (with a fresh TOTP code). */
async function registerKey(jar: Jar, key: SoftKey, code?: string) {
  const pageRes = await get(f, jar, '/webauthn');
  expect(pageRes.statusCode).toBe(200);
  f.clock.advance(30_000);
  return post(f, jar, '/webauthn/register', {
    _csrf: csrfIn(pageRes.body), attempt: field(pageRes.body, 'attempt'), code: code ?? totpAt(SECRET, f.clock.now() / 1000), response: key.register(optionsIn(pageRes.body)),
  });
}

/** Step one: password and an empty code; returns the challenge page's fields. */
let n = 0;
/** Each login from its own address: the login's rate limit is per address. */
const nextAddress = () => `10.7.${(++n) >> 8}.${n & 255}`;
async function passwordStep(user: string, from = nextAddress()) {
  const jar = new Jar();
  const token = csrfIn((await get(f, jar, '/login', from)).body);
  const res = await post(f, jar, '/login', { _csrf: token, username: user, password: PASSWORD, code: '' }, from);
  return { jar, res, body: res.body, from };
}

async function keyLogin(user: string, key: SoftKey, o: Parameters<SoftKey['assert']>[1] = {}) {
  const s = await passwordStep(user);
  expect(s.res.statusCode, s.body.slice(0, 200)).toBe(200);
  const opts = optionsIn(s.body);
  const response = key.assert(opts.challenge, o);
  const fields = { _csrf: csrfIn(s.body), attempt: field(s.body, 'attempt'), response };
  const res = await post(f, s.jar, '/login/webauthn', fields, s.from);
  return { ...s, fields, res, location: String(res.headers.location), opts };
}

describe('WebAuthn challenges', () => {
  it('are single use and expire after 2 minutes; a reused one still names its user', () => {
    const clock = new ManualClock(0);
    const c = new WebauthnChallenges(clock);
    const base = { purpose: 'login' as const, user: 'aud', userId: 1, challenge: 'x', source: '::1', gen: 'g' };
    const a = c.issue(base);
    expect(c.take(a, 'register').status).toBe('unknown');
    expect(c.take(a, 'login').status).toBe('ok');
    const again = c.take(a, 'login');
    expect(again.status).toBe('used');
    expect(again.status !== 'unknown' && again.p.user).toBe('aud');
    const b = c.issue(base);
    clock.advance(120_000);
    expect(c.take(b, 'login').status).toBe('expired');
    expect(c.take('nope', 'login').status).toBe('unknown');
    clock.advance(1_000_000);
    c.issue(base);
    expect(c.size).toBe(1); // old tombstones are purged
  });
});

describe('web login with a security key', () => {
  let aud: Jar;
  const key = new SoftKey();

  beforeAll(async () => {
    f = await startWeb({ webOrigin: ORIGIN });
    ({ jar: aud } = await login(f, 'aud'));
  });
  afterAll(async () => { await f?.close(); });
  // Each refusal below counts toward aud's lockout (5 lock): start each test unlocked.
  beforeEach(async () => { await f.store.lockout.clear(f.one<{ id: number }>("SELECT id FROM users WHERE name = 'aud'")!.id); });

  it('registering needs a fresh TOTP code: a stolen session alone adds nothing', async () => {
    const res = await registerKey(aud, key, '000000');
    expect(res.statusCode).toBe(403);
    expect(f.rows('webauthn_credentials')).toBe(0);
  });

  it('registers a key (audited), ends the other sessions of the user, keeps this one', async () => {
    const { jar: other } = await login(f, 'aud');
    expect((await get(f, other, '/sessions')).statusCode).toBe(200);
    const res = await registerKey(aud, key);
    expect(res.statusCode, res.body).toBe(303);
    expect(f.rows('webauthn_credentials')).toBe(1);
    const ev = (await f.store.audit.list({ type: 'admin.user.webauthn.add' })).at(-1)!;
    expect(ev.data).toMatchObject({ user: 'aud', credential: b64u(key.id) });
    expect((await get(f, aud, '/webauthn')).body).toContain(b64u(key.id).slice(0, 16));
    expect((await get(f, other, '/sessions')).statusCode).toBe(302);
  });

  it('the same registration posted twice is refused (single-use challenge)', async () => {
    const pageRes = await get(f, aud, '/webauthn');
    const fields = { _csrf: csrfIn(pageRes.body), attempt: field(pageRes.body, 'attempt'), response: new SoftKey().register(optionsIn(pageRes.body)) };
    f.clock.advance(30_000);
    expect((await post(f, aud, '/webauthn/register', { ...fields, code: totpAt(SECRET, f.clock.now() / 1000) })).statusCode).toBe(303);
    f.clock.advance(30_000);
    expect((await post(f, aud, '/webauthn/register', { ...fields, code: totpAt(SECRET, f.clock.now() / 1000) })).statusCode).toBe(400);
    expect(f.rows('webauthn_credentials')).toBe(2);
    // Remove the second key again (audited).
    const id = f.one<{ id: number }>('SELECT max(id) AS id FROM webauthn_credentials')!.id;
    const res = await post(f, aud, `/webauthn/${id}/remove`, { _csrf: csrfIn((await get(f, aud, '/webauthn')).body) });
    expect(res.statusCode).toBe(303);
    expect(f.rows('webauthn_credentials')).toBe(1);
    expect((await f.store.audit.list({ type: 'admin.user.webauthn.remove' })).length).toBe(1);
  });

  it('password + key, no code: logged in, audited with method webauthn; a second login with a grown counter too', async () => {
    const first = await keyLogin('aud', key);
    expect(first.opts.rpId).toBe(RP_ID);
    expect(first.opts.allowCredentials?.map((c) => c.id)).toEqual([b64u(key.id)]);
    expect(first.location).toBe('/sessions');
    expect((await get(f, first.jar, '/sessions')).statusCode).toBe(200);
    const ev = (await f.store.audit.list({ type: 'web.login' })).at(-1)!;
    expect(ev.data).toMatchObject({ user: 'aud', method: 'webauthn' });
    expect((await keyLogin('aud', key)).location).toBe('/sessions');
    expect(f.one<{ counter: number }>('SELECT counter FROM webauthn_credentials')!.counter).toBe(key.counter);
  });

  it('the same assertion sent twice: the second is refused and counted', async () => {
    const before = failures('aud');
    const ok = await keyLogin('aud', key);
    expect(ok.location).toBe('/sessions');
    const again = await post(f, new Jar(), '/login/webauthn', ok.fields, ok.from);
    // (a fresh jar has no CSRF cookie: replay with the first jar, as an attacker holding it would)
    expect(again.statusCode).toBe(403);
    const replay = await post(f, ok.jar, '/login/webauthn', { ...ok.fields, _csrf: csrfIn((await get(f, ok.jar, '/login', ok.from)).body) }, ok.from);
    expect(String(replay.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('webauthn_challenge_reused');
    expect(failures('aud')).toBe(before + 1);
  });

  it('a counter that does not grow (a cloned key) is refused and counted', async () => {
    const before = failures('aud');
    const r = await keyLogin('aud', key, { counter: key.counter });
    expect(r.location).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('webauthn_bad_assertion');
    expect(failures('aud')).toBe(before + 1);
    // A race that the library's check cannot see (both read the same stored counter): the claim decides.
    expect(await f.store.webauthn.claimCounter(b64u(key.id), key.counter, f.clock.now())).toBe(false);
  });

  it('no user presence, a phishing origin, a bad signature or an expired challenge is refused and counted', async () => {
    const before = failures('aud');
    expect((await keyLogin('aud', key, { flags: 0x00 })).location).toBe('/login?error=1'); // no user presence
    // Signed properly, but for the page of a phishing site that relayed the challenge.
    expect((await keyLogin('aud', key, { origin: 'http://evil.test' })).location).toBe('/login?error=1');
    const s = await passwordStep('aud');
    const forged = JSON.parse(key.assert(optionsIn(s.body).challenge)) as { response: { signature: string } };
    forged.response.signature = b64u(Buffer.from(forged.response.signature, 'base64url').fill(7, 10, 20));
    const res = await post(f, s.jar, '/login/webauthn', { _csrf: csrfIn(s.body), attempt: field(s.body, 'attempt'), response: JSON.stringify(forged) }, s.from);
    expect(String(res.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('webauthn_bad_assertion');
    const late = await passwordStep('aud');
    f.clock.advance(121_000);
    const lateRes = await post(f, late.jar, '/login/webauthn', { _csrf: csrfIn(late.body), attempt: field(late.body, 'attempt'), response: key.assert(optionsIn(late.body).challenge) }, late.from);
    expect(String(lateRes.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('webauthn_challenge_expired');
    expect(failures('aud')).toBe(before + 4);
  });

  it("another user's credential is refused and counted", async () => {
    const { jar: boss } = await login(f, 'boss');
    const bossKey = new SoftKey();
    expect((await registerKey(boss, bossKey)).statusCode).toBe(303);
    const before = failures('aud');
    const s = await passwordStep('aud');
    const res = await post(f, s.jar, '/login/webauthn', { _csrf: csrfIn(s.body), attempt: field(s.body, 'attempt'), response: bossKey.assert(optionsIn(s.body).challenge) }, s.from);
    expect(String(res.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('webauthn_unknown_credential');
    expect(failures('aud')).toBe(before + 1);
  });

  it('a user disabled between the password and the key is refused', async () => {
    await f.store.lockout.clear(f.one<{ id: number }>("SELECT id FROM users WHERE name = 'aud'")!.id);
    const s = await passwordStep('aud');
    await f.store.users.setDisabled('aud', true, 'test', { actor: 'test' });
    const res = await post(f, s.jar, '/login/webauthn', { _csrf: csrfIn(s.body), attempt: field(s.body, 'attempt'), response: key.assert(optionsIn(s.body).challenge) }, s.from);
    expect(String(res.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('user_disabled');
    await f.store.users.setDisabled('aud', false, '', { actor: 'test' });
  });

  it('a user without a key still needs the TOTP code; for a user with one, a wrong password gets the same page, and no key makes up for it', async () => {
    await f.addViewer('nokey');
    const s = await passwordStep('nokey');
    expect(s.res.statusCode).toBe(303);
    expect(String(s.res.headers.location)).toBe('/login?error=1');
    const jar = new Jar();
    const from = nextAddress();
    const token = csrfIn((await get(f, jar, '/login', from)).body);
    const wrong = await post(f, jar, '/login', { _csrf: token, username: 'aud', password: 'wrong', code: '' }, from);
    const right = await passwordStep('aud');
    // The same kind of page either way: which one came back says nothing about the password.
    expect([wrong.statusCode, right.res.statusCode]).toEqual([200, 200]);
    expect(wrong.body).toContain('data-options');
    expect(optionsIn(wrong.body).allowCredentials).toEqual(optionsIn(right.body).allowCredentials);
    // The wrong password was audited and counted at once; a valid assertion on its page is refused.
    expect((await lastFailure()).reason).toBe('wrong_password');
    const res = await post(f, jar, '/login/webauthn', { _csrf: csrfIn(wrong.body), attempt: field(wrong.body, 'attempt'), response: key.assert(optionsIn(wrong.body).challenge) }, from);
    expect(String(res.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('wrong_password');
  });

  it('the assertion from another address than the password step is refused (the attempt is bound to it)', async () => {
    const s = await passwordStep('aud');
    const res = await post(f, s.jar, '/login/webauthn', { _csrf: csrfIn(s.body), attempt: field(s.body, 'attempt'), response: key.assert(optionsIn(s.body).challenge) }, nextAddress());
    expect(String(res.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('webauthn_other_source');
  });

  it('a password change between the two steps ends the attempt', async () => {
    const s = await passwordStep('aud');
    const hash = f.one<{ password_hash: string }>("SELECT password_hash FROM users WHERE name = 'aud'")!.password_hash;
    await f.store.users.setPassword('aud', `${hash.slice(0, -1)}${hash.endsWith('x') ? 'y' : 'x'}`, { actor: 'test' });
    const res = await post(f, s.jar, '/login/webauthn', { _csrf: csrfIn(s.body), attempt: field(s.body, 'attempt'), response: key.assert(optionsIn(s.body).challenge) }, s.from);
    expect(String(res.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('changed_during_login');
    await f.store.users.setPassword('aud', hash, { actor: 'test' });
  });

  it('the key step has the login rate limit (10 a minute per address)', async () => {
    const from = nextAddress();
    const jar = new Jar();
    const token = csrfIn((await get(f, jar, '/login', from)).body);
    const codes: number[] = [];
    for (let i = 0; i < 11; i++) codes.push((await post(f, jar, '/login/webauthn', { _csrf: token, attempt: `x${i}`, response: '{}' }, from)).statusCode);
    expect(codes.slice(0, 10).every((c) => c === 303)).toBe(true);
    expect(codes[10]).toBe(429);
  });

  it('an unknown attempt is refused', async () => {
    const s = await passwordStep('aud');
    const res = await post(f, s.jar, '/login/webauthn', { _csrf: csrfIn(s.body), attempt: 'nope', response: key.assert(optionsIn(s.body).challenge) }, s.from);
    expect(String(res.headers.location)).toBe('/login?error=1');
    expect((await lastFailure()).reason).toBe('webauthn_unknown_attempt');
  });
});
