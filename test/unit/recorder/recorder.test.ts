import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import type { ChannelContext } from '../../../src/proxy/channels.js';
import type { LiveConnection } from '../../../src/proxy/live.js';
import { createRecorderFactory, RecordingUnavailable } from '../../../src/recorder/recorder.js';
import { isFileTransfer } from '../../../src/proxy/target.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { tempDir } from '../../helpers/cli.js';
import { tempStore } from '../../helpers/store.js';

const hostKey = Buffer.from(ssh2.utils.generateKeyPairSync('ed25519').private);

function ctx(): ChannelContext {
  const live = { id: 'abc-123', identity: { user: 'alice', userId: 1, fingerprint: 'SHA256:x' }, source: '127.0.0.1' } as unknown as LiveConnection;
  return { live, channel: 0, kind: 'exec', command: 'ls', host: 'web1', login: 'deploy', pty: null, abort: () => undefined, track: () => undefined };
}

async function factoryWith(required: boolean) {
  const dir = tempDir();
  const cfgFile = path.join(dir, 'g.yaml');
  fs.writeFileSync(cfgFile, `recording:\n  required: ${required}\n  minFreeSpace: 0\n`);
  const { store } = tempStore();
  // The recording root is a regular file, so no recording can be created under it.
  const root = path.join(dir, 'not-a-dir');
  fs.writeFileSync(root, '');
  const factory = createRecorderFactory({ config: loadConfig({ config: cfgFile }, {}), store, clock: { now: () => 0 }, log: silentLogger(), root, hostKey });
  return { factory, store };
}

describe('recorder policy', () => {
  it('fails closed by default: no recording, no session, and the audit says so', async () => {
    const { factory, store } = await factoryWith(true);
    await expect(factory(ctx())).rejects.toBeInstanceOf(RecordingUnavailable);
    const ev = (await store.audit.list({ type: 'recording.failed' }))[0]!;
    expect(ev.data).toMatchObject({ session: 'abc-123', user: 'alice', required: true, phase: 'open' });
  });

  it('recording.required: false lets the session go on unrecorded, audited', async () => {
    const { factory, store } = await factoryWith(false);
    await expect(factory(ctx())).resolves.toEqual([]);
    expect((await store.audit.list({ type: 'recording.failed' }))[0]!.data).toMatchObject({ required: false });
  });

  it.each([
    ['subsystem', 'sftp', true], ['exec', 'scp -t /tmp', true], ['exec', 'scp -r -f /etc', true], ['exec', 'rsync --server -vlogDtpre.iLsfxC . /x', true],
    ['exec', '/usr/lib/openssh/sftp-server', true], ['exec', 'ls -la', false], ['exec', 'scpfoo -t', false], ['shell', null, false],
  ] as const)('file transfer detection: %s %s → %s', (kind, command, expected) => {
    expect(isFileTransfer(kind, command)).toBe(expected);
  });
});

describe('recording.input', () => {
  async function record(input: boolean): Promise<string> {
    const dir = tempDir();
    const cfgFile = path.join(dir, 'g.yaml');
    fs.writeFileSync(cfgFile, `recording:\n  input: ${input}\n  minFreeSpace: 0\n`);
    const { store } = tempStore();
    await store.sessions.open({ id: 'abc-123', user: 'alice', keyFingerprint: 'k', sourceAddr: '127.0.0.1', mode: 'command' });
    await store.sessions.openChannel({ sessionId: 'abc-123', channel: 0, kind: 'shell', command: null, pty: true, host: 'web1', login: 'deploy' });
    const root = path.join(dir, 'recordings');
    const factory = createRecorderFactory({ config: loadConfig({ config: cfgFile }, {}), store, clock: { now: () => Date.UTC(2026, 10, 24) }, log: silentLogger(), root, hostKey });
    const tracked: Promise<unknown>[] = [];
    const c = { ...ctx(), kind: 'shell' as const, command: null, pty: { cols: 80, rows: 24, width: 0, height: 0, term: 'xterm', modes: {} }, track: (p: Promise<unknown>) => { tracked.push(p); } };
    const [rec] = await factory(c as ChannelContext);
    rec!.onInput!(Buffer.from('sudo -s\rhunter2\r'));
    rec!.onOutput!(Buffer.from('[sudo] password: '), 'stdout');
    rec!.onEnd!({ code: 0, signal: null, coreDumped: false, description: '' }, 'target_closed');
    await Promise.all(tracked);
    return fs.readFileSync(path.join(root, (await store.recordings.list('abc-123'))[0]!.path), 'utf8');
  }

  it('is off by default: keystrokes (passwords typed at prompts) are not recorded', async () => {
    const cast = await record(false);
    expect(cast).toContain('[sudo] password: ');
    expect(cast).not.toContain('hunter2');
    expect(cast).not.toMatch(/,"i",/);
  });

  it('records keystrokes as "i" events when turned on', async () => {
    expect(await record(true)).toMatch(/,"i","sudo -s\\rhunter2\\r"\]/);
  });
});
