import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { startProc, type Proc } from '../helpers/proc.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { codeAfter, stepAt } from '../helpers/totp.js';
import { startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

type AuditRow = { type: string; data: Record<string, unknown> };
const PASS = 'a long backup passphrase 2026\n';

async function liveSession(w: World, op: Operator): Promise<{ sid: string; done: Promise<SshResult> }> {
  const before = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel', '--user', op.name]).length;
  const done = w.ssh(op, [`${w.login}@target1`, 'echo live-before-backup; sleep 600; echo finished'], { timeoutMs: 620_000 });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const rows = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel', '--user', op.name]);
    if (rows.length > before) return { sid: rows.at(-1)!.data.session as string, done };
    if (Date.now() > deadline) throw new Error('the live session never started');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
}

describe.runIf(haveOpenSsh())('backup and restore', () => {
  let w: World;
  let alice: Operator;
  let archive: string;
  let restored: string;
  let live: { sid: string; done: Promise<SshResult> };
  let server: Proc | undefined;
  const recorded: string[] = [];

  beforeAll(async () => {
    // mfaGrace: alice's connections on the first server need no fresh TOTP step each.
    w = await startWorld({ config: 'shutdownGrace: 1s\nauth:\n  mfaGrace: 10m\n' });
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login, '--reason', 'backup test']);
    for (let i = 1; i <= 3; i++) {
      const r = await w.ssh(alice, [`${w.login}@target1`, `echo secret-output-${i}`]);
      expect(r.stdout).toBe(`secret-output-${i}\n`);
      recorded.push(`secret-output-${i}`);
    }
    live = await liveSession(w, alice);
    archive = path.join(tempDir('gatehouse-bk-'), 'gatehouse.ghb');
    restored = path.join(tempDir('gatehouse-rs-'), 'restored');
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await w?.stop();
  });

  it('backs up a running server with a live session; nothing secret is in clear in the archive', () => {
    const r = gh(w.data, ['backup', '--out', archive], { input: PASS });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote .*gatehouse\.ghb/);
    expect(fs.statSync(archive).mode & 0o777).toBe(0o600);
    const raw = fs.readFileSync(archive);
    expect(raw.includes('PRIVATE KEY')).toBe(false);
    expect(raw.includes(alice.secret)).toBe(false);
    const master = fs.readFileSync(path.join(w.data, 'master.key'), 'utf8').trim();
    expect(raw.includes(master)).toBe(false);
    expect(raw.includes(Buffer.from(master, 'base64'))).toBe(false);
    expect(raw.includes('SQLite format 3')).toBe(false);
    for (const text of recorded) expect(raw.includes(text)).toBe(false);
    // The backup is audited on the server it was taken from.
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'admin.backup']).map((e) => e.data.file)).toEqual([archive]);
  });

  it('backup verify checks the archive without restoring it', () => {
    const r = gh(w.data, ['backup', 'verify', archive], { input: PASS });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^backup OK/);
    expect(r.stdout).toMatch(/every SHA-256 matches the manifest/);
    expect(r.stdout).toMatch(/recordings included \(4 files\)/);
  });

  it('a wrong passphrase and a flipped byte are refused with a clear message, and nothing is restored', () => {
    const wrong = gh(w.data, ['backup', 'verify', archive], { input: 'not the passphrase at all\n' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/wrong passphrase/);
    const raw = fs.readFileSync(archive);
    const dir = tempDir();
    for (const pos of [Math.floor(raw.length / 2), raw.length - 3, 200]) {
      const flipped = path.join(dir, `flipped-${pos}.ghb`);
      const copy = Buffer.from(raw);
      copy[pos]! ^= 0x20;
      fs.writeFileSync(flipped, copy);
      const v = gh(w.data, ['backup', 'verify', flipped], { input: PASS });
      expect(v.code, `byte ${pos}`).toBe(1);
      expect(v.stderr).toMatch(/damaged or was modified|wrong passphrase \(or its header is damaged\)/);
      const target = path.join(dir, `restore-${pos}`);
      const rs = gh(target, ['restore', flipped], { input: PASS });
      expect(rs.code).toBe(1);
      expect(fs.existsSync(target)).toBe(false);
    }
  });

  it('restore refuses a directory that is not empty, and leaves it alone', () => {
    const busy = tempDir();
    fs.writeFileSync(path.join(busy, 'keep-me'), 'x');
    const r = gh(busy, ['restore', archive], { input: PASS });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not empty/);
    expect(fs.readdirSync(busy)).toEqual(['keep-me']);
  });

  it('restores into a new directory (private files), runs verify, and the restored server serves alice with her TOTP', async () => {
    const r = gh(restored, ['restore', archive], { input: PASS });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/gatehouse verify:\nrecordings: 4 checked; chain of 3 intact and signed/);
    for (const p of walk(restored)) {
      const mode = fs.statSync(p).mode & 0o777;
      expect(mode, p).toBe(fs.statSync(p).isDirectory() ? 0o700 : 0o600);
    }
    expect(fs.readFileSync(path.join(restored, 'ssh_host_ed25519_key')).equals(fs.readFileSync(path.join(w.data, 'ssh_host_ed25519_key')))).toBe(true);
    expect(fs.readFileSync(path.join(restored, 'master.key')).equals(fs.readFileSync(path.join(w.data, 'master.key')))).toBe(true);

    // The original server goes; the restored one takes its ports (same host key: known_hosts holds).
    ghOk(w.data, ['sessions', 'kill', live.sid]);
    await live.done;
    await w.gatehouse.stop();
    const web = new URL(w.web);
    server = startProc(process.execPath, [BIN, 'serve', '--data', restored, '--ssh-listen', `127.0.0.1:${w.port}`, '--web-listen', `127.0.0.1:${web.port}`], {
      env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '' },
    });
    await server.waitFor(/ssh on 127\.0\.0\.1:\d+/, 30_000);

    // Users, grants, sessions and recordings are all there; the session live at backup time is
    // closed by the restored server as interrupted, its recording cut to its last whole line.
    expect(ghJson<{ name: string }[]>(restored, ['user', 'list']).map((u) => u.name)).toContain('alice');
    expect(ghJson<{ reason: string }[]>(restored, ['grant', 'list']).map((g) => g.reason)).toContain('backup test');
    const v = gh(restored, ['verify']);
    expect(v.stdout).toMatch(/recordings: 4 checked; chain of 4 intact and signed/);
    expect(v.stdout).toMatch(/audit log: intact/);
    expect(v.stdout.match(/ intact/g)?.length).toBeGreaterThanOrEqual(4);
    expect(v.code).toBe(0);
    expect(ghJson<{ endReason: string | null }>(restored, ['sessions', 'show', live.sid]).endReason).toBe('interrupted');
    expect(ghJson<AuditRow[]>(restored, ['audit', '--type', 'admin.restore']).map((e) => e.data.file)).toEqual([archive]);
    const out = ghOk(restored, ['sessions', 'search', 'secret-output-2']);
    expect(out).toMatch(/1 session/);

    // TOTP: the restored master.key opens the restored seal. A fresh step (the backed-up database
    // remembers the last step alice used): the next one, accepted at once as one step of skew.
    const login = await w.ssh(alice, [`${w.login}@target1`, 'echo restored-ok'], { answer: codeAfter(alice.secret, stepAt()) });
    expect(login.stderr).not.toMatch(/denied|refused/);
    expect(login.stdout).toBe('restored-ok\n');
    expect(login.code).toBe(0);
  }, 120_000);

  it('--no-recordings leaves them out, and says so', () => {
    const file = path.join(tempDir(), 'norec.ghb');
    ghOk(restored, ['backup', '--out', file, '--no-recordings'], { input: PASS });
    const v = gh(restored, ['backup', 'verify', file], { input: PASS });
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/recordings NOT included/);
    const again = gh(restored, ['backup', '--out', file], { input: PASS });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
  });
});
