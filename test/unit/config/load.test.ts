import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { GatehouseError } from '../../../src/shared/errors.js';
import { tempDir } from '../../helpers/cli.js';

function writeConfig(text: string): string {
  const file = path.join(tempDir(), 'gatehouse.yaml');
  fs.writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): GatehouseError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatehouseError);
    expect((err as GatehouseError).code).toBe('GH_CONFIG');
    return err as GatehouseError;
  }
  throw new Error('expected a config error');
}

describe('config', () => {
  it('has every documented key with its default', () => {
    const c = loadConfig({}, {});
    expect(c.dataDir).toBe(path.resolve('./data'));
    expect(c.store).toBe('sqlite');
    expect(c.ssh).toEqual({ listen: { host: '0.0.0.0', port: 2222 }, loginGraceTime: 30_000, maxStartups: 100, perSourceMaxStartups: 10 });
    expect(c.web).toEqual({ listen: { host: '127.0.0.1', port: 8080 } });
    expect(c.auth).toEqual({ mfaGrace: 0, maxPendingMfa: 3, securityKeys: 'second-factor', lockout: { failures: 5, window: 600_000, duration: 900_000 } });
    expect(c.recording).toEqual({ input: false, required: true, execOutputLimit: 64 * 1024 * 1024, minFreeSpace: 100 * 1024 * 1024, liveIndexEvery: 2000, retention: null, fileContent: { maxBytes: 0 } });
    expect(c.shutdownGrace).toBe(30_000);
    expect(c.log.format).toBe('auto');
    expect(c.sessions).toEqual({ idleTimeout: 1_800_000, maxDuration: 43_200_000, maxPerUser: 10 });
    expect(Object.isFrozen(c) && Object.isFrozen(c.ssh) && Object.isFrozen(c.auth.lockout)).toBe(true);
  });

  it('recording.retention: a duration, or "forever" (null); 0s and junk are refused with the key named', () => {
    expect(loadConfig({ config: writeConfig('recording: { retention: 180d }\n') }, {}).recording.retention).toBe(180 * 86_400_000);
    expect(loadConfig({ config: writeConfig('recording: { retention: forever }\n') }, {}).recording.retention).toBeNull();
    expect(configError(() => loadConfig({ config: writeConfig('recording: { retention: 0s }\n') }, {})).message).toContain('recording.retention');
    expect(configError(() => loadConfig({ config: writeConfig('recording: { retention: "six months" }\n') }, {})).message).toContain('recording.retention');
    expect(configError(() => loadConfig({ config: writeConfig('log: { format: xml }\n') }, {})).message).toContain('log.format');
  });

  it('reads a file and resolves dataDir relative to it', () => {
    const file = writeConfig('dataDir: ./state\nssh: { listen: "[::1]:2200", loginGraceTime: 10s }\nauth: { lockout: { failures: 3 } }\n');
    const c = loadConfig({ config: file }, {});
    expect(c.dataDir).toBe(path.join(path.dirname(file), 'state'));
    expect(c.ssh.listen).toEqual({ host: '::1', port: 2200 });
    expect(c.ssh.loginGraceTime).toBe(10_000);
    expect(c.auth.lockout).toEqual({ failures: 3, window: 600_000, duration: 900_000 });
  });

  it('precedence is flag > environment > file > default', () => {
    const file = writeConfig('ssh: { listen: "127.0.0.1:1001" }\nweb: { listen: "127.0.0.1:1002" }\n');
    const env = { GATEHOUSE_SSH_LISTEN: '127.0.0.1:2001', GATEHOUSE_WEB_LISTEN: '127.0.0.1:2002' };
    expect(loadConfig({ config: file }, {}).ssh.listen.port).toBe(1001);
    expect(loadConfig({ config: file }, env).ssh.listen.port).toBe(2001);
    expect(loadConfig({ config: file, sshListen: '127.0.0.1:3001' }, env).ssh.listen.port).toBe(3001);
    expect(loadConfig({ config: file, sshListen: '127.0.0.1:3001' }, env).web.listen.port).toBe(2002);
    expect(loadConfig({}, { GATEHOUSE_DATA: '/tmp/x' }).dataDir).toBe('/tmp/x');
    expect(loadConfig({ data: '/tmp/y' }, { GATEHOUSE_DATA: '/tmp/x' }).dataDir).toBe('/tmp/y');
    expect(loadConfig({}, { GATEHOUSE_CONFIG: file }).ssh.listen.port).toBe(1001);
  });

  it('refuses an unknown key and names it', () => {
    expect(configError(() => loadConfig({ config: writeConfig('sshh: {}\n') }, {})).message).toContain('"sshh"');
    expect(configError(() => loadConfig({ config: writeConfig('ssh: { listne: "0.0.0.0:22" }\n') }, {})).message).toContain('"ssh.listne"');
    expect(configError(() => loadConfig({ config: writeConfig('auth: { lockout: { failure: 3 } }\n') }, {})).message).toContain('"auth.lockout.failure"');
  });

  it('refuses a bad duration and names the key', () => {
    const e = configError(() => loadConfig({ config: writeConfig('sessions: { idleTimeout: 30 minutes }\n') }, {}));
    expect(e.message).toContain('sessions.idleTimeout');
    expect(e.message).toContain('duration');
    expect(configError(() => loadConfig({ config: writeConfig('auth: { mfaGrace: -1s }\n') }, {})).message).toContain('auth.mfaGrace');
  });

  it('refuses a bad HOST:PORT and names the key', () => {
    expect(configError(() => loadConfig({ config: writeConfig('ssh: { listen: "0.0.0.0" }\n') }, {})).message).toContain('ssh.listen');
    expect(configError(() => loadConfig({ config: writeConfig('web: { listen: "127.0.0.1:70000" }\n') }, {})).message).toContain('web.listen');
    expect(configError(() => loadConfig({ sshListen: 'nope' }, {})).message).toContain('ssh.listen');
    expect(configError(() => loadConfig({}, { GATEHOUSE_WEB_LISTEN: 'x:y' })).message).toContain('web.listen');
  });

  it('refuses wrong types, bad sizes and broken YAML with a clear message', () => {
    expect(configError(() => loadConfig({ config: writeConfig('recording: { input: "yes" }\n') }, {})).message).toContain('recording.input');
    expect(configError(() => loadConfig({ config: writeConfig('recording: { execOutputLimit: lots }\n') }, {})).message).toContain('recording.execOutputLimit');
    expect(configError(() => loadConfig({ config: writeConfig('sessions: { maxPerUser: 0 }\n') }, {})).message).toContain('sessions.maxPerUser');
    expect(configError(() => loadConfig({ config: writeConfig('ssh: [1, 2\n') }, {})).message).toContain('not valid YAML');
    expect(configError(() => loadConfig({ config: writeConfig('ssh: {}\nssh: {}\n') }, {})).message).toContain('not valid YAML');
    expect(configError(() => loadConfig({ config: '/nonexistent/gatehouse.yaml' }, {})).message).toContain('cannot read config file');
  });

  it('accepts the shipped example file as it is', () => {
    const c = loadConfig({ config: path.resolve('config/gatehouse.example.yaml') }, {});
    expect(c.ssh.listen.port).toBe(2222);
    expect(c.recording.execOutputLimit).toBe(64 * 1024 * 1024);
  });
});
