import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, fixtureKey, gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { freePort, startProc, type Proc } from '../helpers/proc.js';

let server: Proc | undefined;
afterEach(async () => { await server?.stop(); server = undefined; });

function jsonLines(text: string): Record<string, unknown>[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('gatehouse serve', () => {
  it('creates the data dir, prints addresses and next steps, mirrors CLI changes to the log, stops cleanly', async () => {
    const data = path.join(tempDir(), 'data');
    const port = await freePort();
    server = startProc(process.execPath, [BIN, 'serve', '--data', data, '--ssh-listen', `127.0.0.1:${port}`, '--web-listen', `127.0.0.1:${await freePort()}`], { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' } });
    await server.waitFor(/ssh on 127\.0\.0\.1:\d+/);
    expect(server.stderr()).toContain(`data in ${data} (created)`);
    expect(server.stderr()).toContain('Next steps');
    expect(fs.statSync(data).mode & 0o777).toBe(0o700);

    // The CLI is another process on the same database while the server runs.
    ghOk(data, ['user', 'add', 'alice']);
    const totp = ghJson<{ secret: string }>(data, ['user', 'totp', 'enroll', 'alice']);
    ghOk(data, ['user', 'key', 'add', 'alice', '-'], { input: fixtureKey('ed25519') });
    await server.waitFor(/"event":"admin\.user\.key\.add"/);

    expect(await server.stop('SIGTERM')).toBe(0);
    const lines = jsonLines(server.stdout());
    const events = lines.filter((l) => l.stream === 'audit').map((l) => l.event);
    expect(events).toEqual(['server.start', 'admin.user.add', 'admin.user.totp.enroll', 'admin.user.key.add', 'server.stop']);
    expect(server.stdout()).not.toContain(totp.secret);
    expect(lines.every((l) => typeof l.time === 'string' && typeof l.level === 'string')).toBe(true);
    const stop = ghJson<{ type: string; data: { signal: string } }[]>(data, ['audit', '--type', 'server.stop']);
    expect(stop.at(-1)!.data.signal).toBe('SIGTERM');

    // The server signed the newest audit row it mirrored: removing rows from the end is noticed.
    expect(ghOk(data, ['verify'])).toMatch(/signed head at event #5: valid/);
    const db = new Database(path.join(data, 'gatehouse.db'));
    db.exec('DROP TRIGGER audit_log_no_delete');
    db.prepare('DELETE FROM audit_log WHERE id >= 4').run();
    db.close();
    const v = gh(data, ['verify']);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/audit head: BROKEN: audit rows up to #5 were signed but the log now ends earlier/);
  });

  it('does not print the next steps once an admin exists, and repeats no audit line after a restart', async () => {
    const data = path.join(tempDir(), 'data');
    ghOk(data, ['user', 'add', 'root1', '--role', 'admin']);
    for (let i = 0; i < 2; i++) {
      server = startProc(process.execPath, [BIN, 'serve', '--data', data, '--ssh-listen', `127.0.0.1:${await freePort()}`, '--web-listen', `127.0.0.1:${await freePort()}`]);
      await server.waitFor(/ssh on/);
      expect(await server.stop('SIGINT')).toBe(0);
      expect(server.stderr()).not.toContain('Next steps');
      const events = jsonLines(server.stdout()).filter((l) => l.stream === 'audit').map((l) => l.event);
      expect(events).toEqual(i === 0 ? ['admin.user.add', 'server.start', 'server.stop'] : ['server.start', 'server.stop']);
      server = undefined;
    }
  });

  it('a start that fails (SSH port in use) exits 1 instead of hanging, and leaves the data dir lock free', async () => {
    const data = path.join(tempDir(), 'data');
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (busy.address() as net.AddressInfo).port;
      server = startProc(process.execPath, [BIN, 'serve', '--data', data, '--ssh-listen', `127.0.0.1:${port}`, '--web-listen', `127.0.0.1:${await freePort()}`], { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' } });
      await server.waitFor(/cannot listen on 127\.0\.0\.1/);
      // Exited on its own: waitFor for something never printed rejects once the process is gone.
      await expect(server.waitFor(/never printed/, 20_000)).rejects.toThrow(/process exited \(1\)/);
    } finally {
      busy.close();
    }
    server = startProc(process.execPath, [BIN, 'serve', '--data', data, '--ssh-listen', `127.0.0.1:${await freePort()}`, '--web-listen', `127.0.0.1:${await freePort()}`], { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' } });
    await server.waitFor(/ssh on 127\.0\.0\.1:\d+/);
  });

  it('refuses to start on a bad config with exit 1 naming the key', async () => {
    const cfg = path.join(tempDir(), 'g.yaml');
    fs.writeFileSync(cfg, 'ssh:\n  listen: nowhere\n');
    const r = gh(path.join(tempDir(), 'd'), ['serve', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ssh\.listen: expected HOST:PORT/);
  });
});
