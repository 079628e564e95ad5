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
