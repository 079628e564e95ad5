import { describe, expect, it } from 'vitest';
import { isRequestCommand, parseRequest, parseSubcommand } from '../../../src/proxy/request-command.js';

const MAX = 12 * 3_600_000;
const ok = (line: string) => {
  const r = parseRequest(line, MAX);
  if (!r.ok) throw new Error(r.message);
  return r.req;
};
const bad = (line: string) => {
  const r = parseRequest(line, MAX);
  expect(r.ok).toBe(false);
  return r.ok ? '' : r.message;
};

describe('the operator request command', () => {
  it('is the word "request" alone: a host named request is still a target', () => {
    expect(isRequestCommand('request root@web1 --reason x')).toBe(true);
    expect(isRequestCommand('  request')).toBe(true);
    expect(isRequestCommand('root@request uptime')).toBe(false);
    expect(isRequestCommand('request@web1 uptime')).toBe(false);
    expect(isRequestCommand('requests root@web1')).toBe(false);
  });

  it('parses a host or a host group, --for, --wait and a reason of several words (ssh joins its arguments)', () => {
    expect(ok('request root@web1 --for 20s --reason disk full on /var --wait')).toEqual({
      login: 'root', target: { kind: 'host', name: 'web1' }, durationMs: 20_000, reason: 'disk full on /var', wait: true,
    });
    expect(ok("request deploy@group:db --reason 'incident 42' --for=1h")).toMatchObject({ target: { kind: 'host-group', name: 'db' }, durationMs: 3_600_000, reason: 'incident 42', wait: false });
    expect(ok('request root@web1 --reason=x')).toMatchObject({ durationMs: null, reason: 'x' });
  });

  it('refuses what an attacker tries first', () => {
    expect(bad('request root@web1')).toMatch(/reason is required/);
    expect(bad(`request root@web1 --reason ${'a'.repeat(1_000_000)}`)).toMatch(/longer than 500/);
    expect(bad('request root@web1 --reason a\u001b[2Jb')).toMatch(/control characters/);
    expect(bad('request root@web1 --reason a\u202eb')).toMatch(/control characters/);
    expect(bad('request root@web1 --for 10y --reason x')).toMatch(/not a duration/);
    expect(bad('request root@web1 --for 3650d --reason x')).toMatch(/longer than allowed/);
    expect(bad('request root@web1 --for -5m --reason x')).toMatch(/not a duration/);
    expect(bad('request root@web1 --for 0s --reason x')).toMatch(/not a duration/);
    expect(bad('request root@web1 --for 1h --for 2h --reason x')).toMatch(/twice/);
    expect(bad('request root@web1 --user alice --reason x')).toMatch(/unknown option "--user"/);
    expect(bad('request root@web1 --reason x --user alice')).toMatch(/unknown option "--user"/);
    expect(bad('request root@web1 root@web2 --reason x')).toMatch(/one target/);
    expect(bad('request web1 --reason x')).toMatch(/not LOGIN@HOST/);
    expect(bad('request r;oot@web1 --reason x')).toMatch(/invalid login/);
    expect(bad('request root@WEB_1 --reason x')).toMatch(/invalid host name/);
    expect(bad("request root@web1 --reason 'unbalanced")).toMatch(/unbalanced/);
    expect(bad('request --reason x')).toMatch(/which target/);
  });

  it('request list and request cancel ID are words no target can be; cancel is strict too', () => {
    expect(parseSubcommand('request list')).toEqual({ ok: true, sub: { kind: 'list' } });
    expect(parseSubcommand('request cancel #12 --reason fixed it')).toEqual({ ok: true, sub: { kind: 'cancel', id: 12, reason: 'fixed it' } });
    expect(parseSubcommand('request root@list --reason x')).toBeNull();
    expect(parseSubcommand('request list bob')).toMatchObject({ ok: false });
    expect(parseSubcommand('request cancel 1e3')).toMatchObject({ ok: false });
    expect(parseSubcommand('request cancel 12 --user alice')).toMatchObject({ ok: false });
    expect(parseSubcommand('request cancel 12 --reason a\u0007b')).toMatchObject({ ok: false });
  });
});
