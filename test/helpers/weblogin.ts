import { execFileSync } from 'node:child_process';
import { expect } from 'vitest';
import type { Operator, World } from './world.js';

/**
 * A login through the web form with fetch, as a browser does it: the CSRF cookie and token, then
 * the session cookie (TOTP from oathtool, computed apart from gatehouse). Returns the Cookie header.
 */
export async function webLogin(w: World, op: Operator, password: string): Promise<string> {
  const jar = new Map<string, string>();
  const take = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      jar.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
  };
  const header = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const page = await fetch(`${w.web}/login`);
  take(page);
  const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)));
  const code = execFileSync('oathtool', ['--totp', '-b', op.secret], { encoding: 'utf8' }).trim();
  const res = await fetch(`${w.web}/login`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: header() },
    body: new URLSearchParams({ _csrf: token, username: op.name, password, code }).toString(),
  });
  take(res);
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).not.toMatch(/error/);
  return header();
}
