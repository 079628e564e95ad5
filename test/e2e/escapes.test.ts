import path from 'node:path';
import Database from 'better-sqlite3';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, fixtureKey, gh, ghOk, tempDir } from '../helpers/cli.js';
import { freePort, startProc, type Proc } from '../helpers/proc.js';
import { run } from '../../src/cli/main.js';

/**
 * Names and text that came from outside (a pre-auth user name, a source address, a command) reach
 * the admin's terminal through the CLI: no control character may arrive raw.
 */
const EVIL = '\u001b[2Kroot\u0007\u009b31m\u202eevil';
// Any C0 control but newline, DEL, C1 controls, bidi overrides/isolates.
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** The CLI's own dispatcher in this process (a dozen commands, no dozen node start-ups). */
async function cli(data: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) => ({ isTTY: false, write: (s: string | Uint8Array) => { append(String(s)); return true; } }) as unknown as NodeJS.WriteStream;
  const code = await run([...args, '--data', data], {
    env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' },
    stdout: sink((s) => { stdout += s; }), stderr: sink((s) => { stderr += s; }),
  });
  return { code, stdout, stderr };
}

/** One failed login by a stock-protocol client (ssh2) that sends `user` as its user name. */
function failedLogin(port: number, user: string): Promise<void> {
  const key = ssh2.utils.generateKeyPairSync('ed25519').private;
  return new Promise((resolve) => {
    const c = new ssh2.Client();
    const done = () => { c.end(); resolve(); };
    c.on('error', done);
    c.on('close', done);
    c.on('ready', done);
    c.connect({ host: '127.0.0.1', port, username: user, privateKey: key, readyTimeout: 20_000, hostVerifier: () => true });
  });
}

describe('the CLI escapes control characters in everything it prints', () => {
  let data: string;
  let server: Proc;
  beforeAll(async () => {
    data = path.join(tempDir(), 'data');
    ghOk(data, ['user', 'add', 'alice']);
    ghOk(data, ['user', 'key', 'add', 'alice', '-'], { input: fixtureKey('ed25519').trim().split(' ').slice(0, 2).join(' ') + ` laptop${EVIL}\n` });
    const port = await freePort();
    server = startProc(process.execPath, [BIN, 'serve', '--data', data, '--ssh-listen', `127.0.0.1:${port}`, '--web-listen', `127.0.0.1:${await freePort()}`],
      { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' } });
    await server.waitFor(/ssh on 127\.0\.0\.1:\d+/);
    await failedLogin(port, EVIL);
    // What a session row could carry from outside, written as the server would.
    const db = new Database(path.join(data, 'gatehouse.db'));
    db.prepare('INSERT INTO sessions (id, user_name, key_fingerprint, source_addr, mode, started_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run('evil-1', `alice${EVIL}`, 'SHA256:x', `10.0.0.1${EVIL}`, 'command', Date.now());
    db.prepare('INSERT INTO channels (session_id, channel, kind, command, pty, host_name, login, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run('evil-1', 0, 'exec', `echo ${EVIL}`, 0, 'web1', 'deploy', Date.now());
    db.close();
  });
  afterAll(async () => { await server?.stop(); });

  it('gatehouse audit shows a pre-auth user name with its escape sequence made visible', async () => {
    const failure = await (async () => {
      for (let i = 0; i < 100; i++) {
        const out = ghOk(data, ['audit', '--type', 'auth.failure']);
        if (out.includes('refused')) return out;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('no auth.failure audited');
    })();
    expect(failure).not.toMatch(RAW_CONTROL);
    expect(failure).toContain('\\x1b[2Kroot\\x07\\x9b31m\\u{202e}evil');
    // --json is still exact: the parsed value is the name as sent.
    const json = gh(data, ['audit', '--type', 'auth.failure', '--json']);
    expect(json.stdout).not.toMatch(RAW_CONTROL);
    const rows = JSON.parse(json.stdout) as { data: { user: string } }[];
    expect(rows.map((r) => r.data.user)).toContain(EVIL);
  });

  it('sessions list, sessions show, user show, user key list and their --json print no raw control character', async () => {
    for (const args of [['sessions', 'list'], ['sessions', 'show', 'evil-1'], ['user', 'show', 'alice'], ['user', 'key', 'list', 'alice'], ['audit'], ['user', 'list']]) {
      const text = await cli(data, args);
      expect(text.code, args.join(' ')).toBe(0);
      expect(text.stdout, args.join(' ')).not.toMatch(RAW_CONTROL);
      const json = await cli(data, [...args, '--json']);
      expect(json.code).toBe(0);
      expect(json.stdout, `${args.join(' ')} --json`).not.toMatch(RAW_CONTROL);
      JSON.parse(json.stdout);
    }
    // The real binary prints the same.
    const list = ghOk(data, ['sessions', 'list']);
    expect(list).not.toMatch(RAW_CONTROL);
    expect(list).toContain('alice\\x1b[2Kroot');
    // One session, one line: a name cannot break a row or forge another.
    expect(list.trim().split('\n')).toHaveLength(2);
    const show = JSON.parse((await cli(data, ['sessions', 'show', 'evil-1', '--json'])).stdout) as { user: string; source: string; channels: { command: string }[] };
    expect(show).toMatchObject({ user: `alice${EVIL}`, source: `10.0.0.1${EVIL}` });
    expect(show.channels[0]!.command).toBe(`echo ${EVIL}`);
  });

  it('an error message that repeats an argument escapes it too', () => {
    const r = gh(data, ['user', 'show', `bob${EVIL}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(r.stderr).toContain('\\x1b[2K');
  });
});
