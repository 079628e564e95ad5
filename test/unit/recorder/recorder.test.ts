import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { createRecorderFactory, RecordingUnavailable } from '../../../src/recorder/recorder.js';
import { isFileTransfer } from '../../../src/proxy/target.js';
import type { ChannelControl, ChannelInfo } from '../../../src/shared/channel.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { Offload } from '../../../src/shared/offload.js';
import { tempDir } from '../../helpers/cli.js';
import { tempStore } from '../../helpers/store.js';

const hostKey = Buffer.from(ssh2.utils.generateKeyPairSync('ed25519').private);

const offload = new Offload();
afterAll(() => offload.stop());

function info(): ChannelInfo {
  return { sessionId: 'abc-123', channel: 0, user: 'alice', kind: 'exec', command: 'ls', action: 'exec', host: 'web1', login: 'deploy', pty: null };
}
function control(track: (p: Promise<unknown>) => void = () => undefined): ChannelControl {
  return { abort: () => undefined, track, counter: {}, filter: () => undefined };
}
const ignore = control();

async function factoryWith(required: boolean) {
  const dir = tempDir();
  const cfgFile = path.join(dir, 'g.yaml');
  fs.writeFileSync(cfgFile, `recording:\n  required: ${required}\n  minFreeSpace: 0\n`);
  const { store } = tempStore();
  // The recording root is a regular file, so no recording can be created under it.
  const root = path.join(dir, 'not-a-dir');
  fs.writeFileSync(root, '');
  const factory = createRecorderFactory({ config: loadConfig({ config: cfgFile }, {}), store, clock: { now: () => 0 }, log: silentLogger(), root, hostKey, offload });
  return { factory, store };
}

describe('recorder policy', () => {
  it('fails closed by default: no recording, no session, and the audit says so', async () => {
    const { factory, store } = await factoryWith(true);
    await expect(factory(info(), ignore)).rejects.toBeInstanceOf(RecordingUnavailable);
    const ev = (await store.audit.list({ type: 'recording.failed' }))[0]!;
    expect(ev.data).toMatchObject({ session: 'abc-123', user: 'alice', required: true, phase: 'open' });
  });

  it('recording.required: false lets the session go on unrecorded, audited', async () => {
    const { factory, store } = await factoryWith(false);
    await expect(factory(info(), ignore)).resolves.toEqual([]);
    expect((await store.audit.list({ type: 'recording.failed' }))[0]!.data).toMatchObject({ required: false });
  });

  it('a stopped app refuses to record (fails closed at open) and leaves no empty recording file behind', async () => {
    const dir = tempDir();
    const cfgFile = path.join(dir, 'g.yaml');
    fs.writeFileSync(cfgFile, 'recording:\n  minFreeSpace: 0\n');
    const { store } = tempStore();
    const stopped = new Offload();
    await stopped.stop();
    const root = path.join(dir, 'recordings');
    const factory = createRecorderFactory({ config: loadConfig({ config: cfgFile }, {}), store, clock: { now: () => 0 }, log: silentLogger(), root, hostKey, offload: stopped });
    await expect(factory(info(), ignore)).rejects.toBeInstanceOf(RecordingUnavailable);
    expect((await store.audit.list({ type: 'recording.failed' }))[0]!.data).toMatchObject({ phase: 'open', error: 'the hashing thread stopped' });
    expect(fs.readdirSync(root, { recursive: true }).filter((f) => String(f).endsWith('.cast'))).toEqual([]);
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
    const factory = createRecorderFactory({ config: loadConfig({ config: cfgFile }, {}), store, clock: { now: () => Date.UTC(2026, 10, 24) }, log: silentLogger(), root, hostKey, offload });
    const tracked: Promise<unknown>[] = [];
    const c: ChannelInfo = { ...info(), kind: 'shell', command: null, action: 'shell', pty: { cols: 80, rows: 24, term: 'xterm' } };
    const [rec] = await factory(c, control((p) => { tracked.push(p); }));
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
