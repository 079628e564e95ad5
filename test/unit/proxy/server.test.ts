import { describe, expect, it } from 'vitest';
import { assertNativeCrypto } from '../../../src/proxy/server.js';
import { parseTarget } from '../../../src/proxy/target.js';
import { findHost } from '../../../src/auth/admit.js';
import type { HostRecord } from '../../../src/store/types.js';

describe('native crypto check', () => {
  it('passes with the binding built by npm ci', () => {
    expect(() => assertNativeCrypto()).not.toThrow();
  });
  it('refuses to start without it and says how to fix it', () => {
    try {
      assertNativeCrypto({ bindingAvailable: false });
      throw new Error('expected a refusal');
    } catch (err) {
      expect((err as Error).message).toMatch(/native crypto binding is missing/);
      expect((err as { hint: string }).hint).toMatch(/npm rebuild ssh2/);
    }
  });
});

describe('target parsing', () => {
  it.each([
    ['deploy@web1', { login: 'deploy', host: 'web1', command: null }],
    ['deploy@web1 uname -a', { login: 'deploy', host: 'web1', command: 'uname -a' }],
    ['  root@db1   echo "a  b" ; exit 3', { login: 'root', host: 'db1', command: 'echo "a  b" ; exit 3' }],
    ['u@10.0.0.5 ls', { login: 'u', host: '10.0.0.5', command: 'ls' }],
  ])('%j', (text, target) => {
    expect(parseTarget(text)).toEqual({ ok: true, target });
  });
  it.each(['', 'web1', '@web1', 'deploy@', 'deploy@ ls'])('refuses %j', (text) => {
    expect(parseTarget(text).ok).toBe(false);
  });
  it('finds a host by name, or by an address only one host has', () => {
    const h = (name: string, address: string) => ({ name, address } as HostRecord);
    const hosts = [h('web1', '10.0.0.5'), h('web2', '10.0.0.6'), h('web2b', '10.0.0.6')];
    expect(findHost(hosts, 'web1')?.name).toBe('web1');
    expect(findHost(hosts, '10.0.0.5')?.name).toBe('web1');
    expect(findHost(hosts, '10.0.0.6')).toBeNull();
    expect(findHost(hosts, 'nope')).toBeNull();
  });
});
