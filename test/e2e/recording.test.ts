import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { Tmux, shellQuote } from '../helpers/tmux.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';

type AuditRow = { type: string; data: Record<string, unknown> };
type Event = [number, string, string];

function readCast(file: string): { header: Record<string, unknown>; events: Event[] } {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  expect(lines.at(-1)).toBe(''); // ends with a newline: no partial line
  return { header: JSON.parse(lines[0]!) as Record<string, unknown>, events: lines.slice(1, -1).map((l) => JSON.parse(l) as Event) };
}

/** The strict validator: asciinema 2.x `cat`, which needs a tty, run under script(1). */
function asciinemaCat(file: string): { code: number; out: string } {
  const dir = tempDir();
  const out = path.join(dir, 'out');
  let code = 0;
  try {
    execFileSync('script', ['-qec', `asciinema cat ${shellQuote(file)} > ${shellQuote(out)} 2> ${shellQuote(out + '.err')}`, '/dev/null'], { stdio: 'ignore', timeout: 30_000 });
  } catch (err) {
    code = (err as { status: number }).status ?? 1;
  }
  return { code, out: fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '' };
}

function castFiles(w: World, sessionId: string): string[] {
  const root = path.join(w.data, 'recordings');
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.startsWith(sessionId)) found.push(path.join(d, e.name));
    }
  };
  if (fs.existsSync(root)) walk(root);
  return found.sort();
}

const lastSession = (w: World) => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).at(-1)!.data.session as string;
const waitClosed = async (w: World, sid: string) =>
  expect.poll(() => ghJson<{ endedAt: string | null }>(w.data, ['sessions', 'show', sid]).endedAt, { timeout: 10_000 }).not.toBeNull();

describe.runIf(haveOpenSsh())('recording sessions as asciicast v2', () => {
  let w: World;
  let alice: Operator;
  let target: string;
  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\nrecording:\n  execOutputLimit: 10000\n' });
    alice = w.operator('alice');
    target = `${w.login}@target1`;
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
  });
  afterAll(async () => { await w?.stop(); });

  it('an exec leaves a 0600 file that asciinema accepts, with the text the operator saw', async () => {
    const r = await w.ssh(alice, [target, 'printf "h\\303\\251llo w\\303\\266rld\\n"; echo to-stderr >&2; exit 3']);
    expect(r).toMatchObject({ code: 3, stdout: 'héllo wörld\n', stderr: 'to-stderr\n' });
    const sid = lastSession(w);
    await waitClosed(w, sid);
    const [file] = castFiles(w, sid);
    expect(path.relative(path.join(w.data, 'recordings'), file!)).toMatch(new RegExp(`^\\d{4}/\\d{2}/\\d{2}/${sid}-0\\.cast$`));
    expect(fs.statSync(file!).mode & 0o777).toBe(0o600);
    const { header, events } = readCast(file!);
    expect(header).toMatchObject({ version: 2, width: 80, height: 24, title: `alice → ${target}`, command: 'printf "h\\303\\251llo w\\303\\266rld\\n"; echo to-stderr >&2; exit 3', env: { TERM: 'xterm' } });
    expect(events[0]!.slice(1)).toEqual(['m', header.command]);
    expect(events.filter((e) => e[1] === 'o').map((e) => e[2]).join('')).toBe('héllo wörld\r\nto-stderr\r\n');
    expect(events.some((e) => e[1] === 'i')).toBe(false);
    const cat = asciinemaCat(file!);
    expect(cat.code).toBe(0);
    expect(cat.out.replace(/\r/g, '')).toContain('héllo wörld');
    const closed = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.closed']).at(-1)!;
    expect(closed.data).toMatchObject({ session: sid, channel: 0, state: 'closed', size: fs.statSync(file!).size, sha256: createHash('sha256').update(fs.readFileSync(file!)).digest('hex') });
    const v = ghJson<{ ok: boolean; recordings: { items: { verdict: string }[] } }>(w.data, ['verify', sid]);
    expect(v.ok).toBe(true);
    expect(v.recordings.items.map((i) => i.verdict)).toEqual(['intact']);
  });

  it('an exec without a pty is recorded up to execOutputLimit; hashes of the full streams stay on the channel row', async () => {
    const r = await w.ssh(alice, [target, 'head -c 50000 /dev/zero | tr "\\0" a']);
    expect(r.stdoutBytes.length).toBe(50000);
    const sid = lastSession(w);
    await waitClosed(w, sid);
    const { events } = readCast(castFiles(w, sid)[0]!);
    const recorded = events.filter((e) => e[1] === 'o').map((e) => e[2]).join('');
    expect(recorded).toBe('a'.repeat(10000));
    expect(events.at(-1)![1]).toBe('m');
    expect(events.at(-1)![2]).toMatch(/recording stops here: recording\.execOutputLimit \(10000 bytes\)/);
    const db = new Database(path.join(w.data, 'gatehouse.db'), { readonly: true });
    const row = db.prepare('SELECT stdout_bytes, stdout_sha256 FROM channels WHERE session_id = ?').get(sid) as { stdout_bytes: number; stdout_sha256: string };
    const rec = db.prepare('SELECT truncated FROM recordings WHERE session_id = ?').get(sid) as { truncated: number };
    db.close();
    expect(row).toEqual({ stdout_bytes: 50000, stdout_sha256: createHash('sha256').update('a'.repeat(50000)).digest('hex') });
    expect(rec.truncated).toBe(1);
  });

  it('a pty session is recorded whole, with the client\'s resize as an "r" event', async () => {
    const t = new Tmux(100, 30);
    try {
      const c = w.sshCommand(alice, [target], { extra: ['-t'] });
      t.start(`ssh ${c.args.map(shellQuote).join(' ')}`, { SSH_ASKPASS: c.env.SSH_ASKPASS!, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0', GH_ANSWER: 'totp', GH_TOTP_SECRET: alice.secret, GH_ASKPASS_LOG: '/dev/null' });
      await t.waitFor(/[#$]\s*$/m);
      t.type('echo REC_$((6*7))\n');
      await t.waitFor(/^REC_42$/m);
      t.resize(132, 50);
      await new Promise((r) => setTimeout(r, 300));
      t.type('stty size; exit\n');
      await t.waitFor(/EXIT=0/);
    } finally {
      t.kill();
    }
    const sid = lastSession(w);
    await waitClosed(w, sid);
    const file = castFiles(w, sid)[0]!;
    const { header, events } = readCast(file);
    expect(header).toMatchObject({ width: 100, height: 30 });
    expect(String((header.env as Record<string, string>).TERM)).toMatch(/screen|tmux|xterm/);
    expect(events.filter((e) => e[1] === 'r').map((e) => e[2])).toContain('132x50');
    const text = events.filter((e) => e[1] === 'o').map((e) => e[2]).join('');
    expect(text).toContain('REC_42');
    expect(text).toContain('50 132');
    expect(events.some((e) => e[1] === 'i')).toBe(false); // recording.input is off by default
    expect(asciinemaCat(file).code).toBe(0);
  });

  it('sessions play replays the output; sessions export writes the files and a manifest; both are audited', async () => {
    const r = await w.ssh(alice, [target, 'echo replay-me']);
    expect(r.stdout).toBe('replay-me\n');
    const sid = lastSession(w);
    await waitClosed(w, sid);
    expect(ghOk(w.data, ['sessions', 'play', sid, '--speed', '100'])).toBe('replay-me\r\n');
    const out = path.join(tempDir(), 'export');
    ghOk(w.data, ['sessions', 'export', sid, '--out', out]);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { session: { id: string }; recordings: { file: string; sha256: string; verdict: string }[] };
    expect(manifest.session.id).toBe(sid);
    expect(manifest.recordings).toHaveLength(1);
    expect(manifest.recordings[0]!.verdict).toBe('intact');
    expect(createHash('sha256').update(fs.readFileSync(path.join(out, manifest.recordings[0]!.file))).digest('hex')).toBe(manifest.recordings[0]!.sha256);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.viewed']).map((e) => [e.data.session, e.data.how])).toEqual([[sid, 'play'], [sid, 'export']]);
  });

  it('free space under recording.minFreeSpace refuses new sessions', async () => {
    const dir = path.join(w.data, 'recordings');
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    try {
      const r = await w.ssh(alice, [target, 'echo must-not-run']);
      expect(r).toMatchObject({ code: 1, stdout: '' });
      expect(r.stderr).toMatch(/session refused: the recording cannot be written \(free space in .* is under recording\.minFreeSpace\)/);
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  it('verify reports an edited byte, a deleted file and a deleted recording row, and exits 1', async () => {
    const sids: string[] = [];
    for (let i = 0; i < 3; i++) {
      await w.ssh(alice, [target, `echo tamper-${i}`]);
      sids.push(lastSession(w));
      await waitClosed(w, sids[i]!);
    }
    expect(gh(w.data, ['verify']).code).toBe(0);

    const edited = castFiles(w, sids[0]!)[0]!;
    const bytes = fs.readFileSync(edited);
    bytes[bytes.length - 5] ^= 0x01;
    fs.writeFileSync(edited, bytes);
    let v = gh(w.data, ['verify']);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(new RegExp(`${sids[0]}-0\\s+MODIFIED`));

    fs.unlinkSync(castFiles(w, sids[1]!)[0]!);
    v = gh(w.data, ['verify']);
    expect(v.stdout).toMatch(new RegExp(`${sids[1]}-0\\s+MISSING`));

    const db = new Database(path.join(w.data, 'gatehouse.db'));
    db.prepare('DELETE FROM recordings WHERE session_id = ?').run(sids[2]);
    db.close();
    v = gh(w.data, ['verify']);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/chain: the last recording row\(s\) were removed/);

    const truncated = castFiles(w, sids[2]!)[0]!;
    expect(fs.existsSync(truncated)).toBe(true);
  });
});

describe.runIf(haveOpenSsh())('recording fails closed', () => {
  let w: World;
  let op: Operator;
  beforeAll(async () => {
    // No free-space floor here, so a tiny filesystem fills up mid-session instead of refusing at the start.
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\nrecording:\n  minFreeSpace: 0\n' });
    op = w.operator('olga');
    ghOk(w.data, ['grant', 'add', '--user', 'olga', '--host', 'target1', '--login', w.login]);
  });
  afterAll(async () => {
    try { execFileSync('umount', [path.join(w.data, 'recordings')], { stdio: 'ignore' }); } catch { /* not mounted */ }
    await w?.stop();
  });

  it('kill -9 mid-session leaves a valid file; after restart the session is interrupted and verify says intact', async () => {
    const running = w.ssh(op, [`${w.login}@target1`, 'for i in $(seq 1 100); do echo line-$i; sleep 0.05; done'], { timeoutMs: 30_000 });
    await expect.poll(() => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).length, { timeout: 10_000 }).toBeGreaterThan(0);
    const sid = lastSession(w);
    await new Promise((r) => setTimeout(r, 2500)); // at least one flush (every second) has happened
    process.kill(w.gatehouse.child.pid!, 'SIGKILL');
    const r = await running;
    expect(r.code).not.toBe(0);
    await w.restart();
    expect(ghJson<{ endReason: string }>(w.data, ['sessions', 'show', sid]).endReason).toBe('interrupted');
    const file = castFiles(w, sid)[0]!;
    const { events } = readCast(file);
    expect(events.filter((e) => e[1] === 'o').length).toBeGreaterThan(5);
    expect(asciinemaCat(file).code).toBe(0);
    const v = gh(w.data, ['verify', sid]);
    expect(v.stdout).toMatch(/intact \(interrupted session\)/);
    expect(ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.recovered']).map((e) => e.data.session)).toContain(sid);
  });

  // A new operator per test: mfaGrace is in memory and a TOTP step is accepted once per user.
  const fresh = (name: string) => {
    const o = w.operator(name);
    ghOk(w.data, ['grant', 'add', '--user', name, '--host', 'target1', '--login', w.login]);
    return o;
  };

  it('an unwritable recording directory refuses the session and says why', async () => {
    const op = fresh('pia');
    const dir = path.join(w.data, 'recordings');
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir]);
    try {
      const r = await w.ssh(op, [`${w.login}@target1`, 'echo must-not-run']);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^gatehouse: session refused: the recording cannot be written/);
      const failed = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.failed']).at(-1)!;
      expect(failed.data).toMatchObject({ user: 'pia', required: true, phase: 'open' });
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  it('a disk that fills up mid-session ends the session, audited', async () => {
    const op = fresh('quinn');
    const dir = path.join(w.data, 'recordings');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir]);
    try {
      const r = await w.ssh(op, [`${w.login}@target1`, 'for i in $(seq 1 40); do head -c 20000 /dev/urandom | base64; sleep 0.05; done'], { timeoutMs: 30_000 });
      expect(r.code).toBe(255);
      expect(r.stderr).toMatch(/gatehouse: session ended: the recording cannot be written/);
      const failed = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.failed']).at(-1)!;
      expect(failed.data).toMatchObject({ user: 'quinn', required: true, phase: 'write' });
      expect(String(failed.data.error)).toMatch(/ENOSPC|no space/i);
    } finally {
      execFileSync('umount', [dir]);
    }
  });
});
