import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { runSsh, startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

/**
 * File transfers audited file by file, with the stock clients (sftp, scp in both modes, rsync)
 * through `-J` and through command mode. The target is a local sshd, so "both ends" are files on
 * this machine: every hash gatehouse reports is compared with `sha256sum` of the file on each end.
 */
type AuditRow = { type: string; data: Record<string, unknown> };
type Shown = { endedAt: string | null; files: { direction: string; path: string; size: number; sha256: string; protocol: string; at: string }[] };
const sha256sum = (f: string) => execFileSync('sha256sum', [f], { encoding: 'utf8' }).split(' ')[0]!;

describe.runIf(haveOpenSsh())('file audit: sftp, scp and rsync, file by file; the sftp-read right', () => {
  let w: World;
  let alice: Operator; // shell, exec, sftp
  let rita: Operator; // sftp-read only
  let files: string;
  let remote: string;

  const events = (type: string) => ghJson<AuditRow[]>(w.data, ['audit', '--type', type]).map((e) => e.data);
  const lastSession = () => String(events('session.channel').at(-1)!.session);

  /**
   * Command mode for scp -O and rsync: their "ssh" becomes `ssh OP@bastion LOGIN@HOST COMMAND`. The
   * wrapper drops the options the client passes to its ssh and keeps the host and the command.
   */
  function commandModeWrapper(op: Operator): string {
    const { args } = w.sshCommand(op, []);
    const file = path.join(w.dir, `cmdmode-${op.name}.sh`);
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    fs.writeFileSync(file, [
      '#!/bin/sh',
      'while [ $# -gt 0 ]; do',
      '  case "$1" in --) shift; break;; -l|-p|-o|-i|-F|-c|-e) shift 2;; -*) shift;; *) break;; esac',
      'done',
      'host="$1"; shift',
      `exec ssh ${args.map(q).join(' ')} "${w.login}@$host" "$*"`, '',
    ].join('\n'), { mode: 0o755 });
    return file;
  }

  const run = (op: Operator, cmd: string, args: string[], input?: string): Promise<SshResult> =>
    runSsh(args, w.sshCommand(op, []).env, input, 120_000, cmd);

  const sftpBatch = (op: Operator, cfg: string, lines: string[]) => {
    const batch = path.join(w.dir, `batch-${op.name}-${Date.now()}`);
    fs.writeFileSync(batch, lines.join('\n') + '\n');
    return run(op, 'sftp', ['-F', cfg, '-b', batch, 'target1']);
  };

  async function ended(sid: string): Promise<Shown> {
    await expect.poll(() => ghJson<Shown>(w.data, ['sessions', 'show', sid]).endedAt, { timeout: 20_000 }).not.toBeNull();
    return ghJson<Shown>(w.data, ['sessions', 'show', sid]);
  }

  const closeOf = (p: string, direction: string) => events('sftp.close').filter((e) => e.path === p && e.direction === direction).at(-1);

  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    files = tempDir('gatehouse-files-');
    remote = path.join(files, 'remote');
    fs.mkdirSync(remote);
    alice = w.operator('alice');
    rita = w.operator('rita');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
    ghOk(w.data, ['grant', 'add', '--user', 'rita', '--host', 'target1', '--login', w.login, '--allow', 'sftp-read']);
  }, 240_000);
  afterAll(async () => {
    await w?.stop();
    if (w) for (const d of [w.dir, w.sshd.dir]) fs.rmSync(d, { recursive: true, force: true });
    if (files) fs.rmSync(files, { recursive: true, force: true });
  }, 120_000);

  it('sftp -J: put, get, rename, mkdir, rm — each audited, hashes equal sha256sum on both ends', async () => {
    const cfg = w.jumpConfig(alice);
    const local = path.join(files, 'a.bin');
    fs.writeFileSync(local, randomBytes(1_500_000)); // many pipelined 32 KiB writes and reads
    const back = path.join(files, 'a-back.bin');
    const r = await sftpBatch(alice, cfg, [
      `put ${local} ${remote}/a.bin`, `get ${remote}/a.bin ${back}`, `put ${local} ${remote}/c.bin`,
      `rename ${remote}/c.bin ${remote}/d.bin`, `mkdir ${remote}/newdir`, `rm ${remote}/d.bin`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const want = sha256sum(local);
    expect(sha256sum(`${remote}/a.bin`)).toBe(want);
    expect(sha256sum(back)).toBe(want);
    const sid = lastSession();
    expect(closeOf(`${remote}/a.bin`, 'upload')).toMatchObject({ session: sid, user: 'alice', host: 'target1', size: 1_500_000, bytesWritten: 1_500_000, sha256: want });
    expect(closeOf(`${remote}/a.bin`, 'download')).toMatchObject({ session: sid, size: 1_500_000, bytesRead: 1_500_000, sha256: sha256sum(back) });
    expect(events('sftp.open').some((e) => e.path === `${remote}/a.bin` && (e.flags as string[]).includes('trunc'))).toBe(true);
    expect(events('sftp.rename').at(-1)).toMatchObject({ session: sid, path: `${remote}/c.bin`, to: `${remote}/d.bin`, ok: true });
    expect(events('sftp.mkdir').at(-1)).toMatchObject({ session: sid, path: `${remote}/newdir`, ok: true });
    expect(events('sftp.remove').at(-1)).toMatchObject({ session: sid, path: `${remote}/d.bin`, ok: true });
    expect(typeof events('sftp.close').at(-1)!.channel).toBe('number');

    // Where auditors look: sessions show, sessions list --file, the export manifest.
    const shown = await ended(sid);
    expect(shown.files).toEqual(expect.arrayContaining([
      expect.objectContaining({ direction: 'upload', path: `${remote}/a.bin`, size: 1_500_000, sha256: want, protocol: 'sftp' }),
      expect.objectContaining({ direction: 'download', path: `${remote}/a.bin`, size: 1_500_000, sha256: want }),
    ]));
    expect(ghOk(w.data, ['sessions', 'show', sid])).toContain(`upload "${remote}/a.bin" 1500000 B sha256 ${want}`);
    const listed = ghJson<{ id: string }[]>(w.data, ['sessions', 'list', '--file', 'remote/a.b']).map((s) => s.id);
    expect(listed).toEqual([sid]);
    expect(ghJson<unknown[]>(w.data, ['sessions', 'list', '--file', 'no-such-file-anywhere'])).toEqual([]);
    const out = path.join(files, 'export');
    ghOk(w.data, ['sessions', 'export', sid, '--out', out]);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { files: Shown['files'] };
    expect(manifest.files.map((f) => [f.direction, f.path, f.sha256])).toEqual(expect.arrayContaining([['upload', `${remote}/a.bin`, want]]));
  }, 300_000);

  it('a seek-and-write upload (sftp reput, resuming at the remote size) is partial, not a wrong hash', async () => {
    const cfg = w.jumpConfig(alice);
    const local = path.join(files, 'resume.bin');
    const content = randomBytes(200_000);
    fs.writeFileSync(local, content);
    fs.writeFileSync(`${remote}/resume.bin`, content.subarray(0, 70_000));
    const r = await sftpBatch(alice, cfg, [`reput ${local} ${remote}/resume.bin`]);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256sum(`${remote}/resume.bin`)).toBe(sha256sum(local));
    expect(closeOf(`${remote}/resume.bin`, 'upload')).toMatchObject({ sha256: 'partial', bytesWritten: 130_000 });
  }, 240_000);

  it('scp -J in SFTP mode and in legacy mode (-O), up and down: each file with its size and hash', async () => {
    const cfg = w.jumpConfig(alice);
    const src = path.join(files, 'scp.bin');
    fs.writeFileSync(src, randomBytes(700_001));
    const want = sha256sum(src);
    for (const mode of [[], ['-O']]) {
      const tag = mode.length ? 'legacy' : 'sftp';
      const up = await run(alice, 'scp', ['-F', cfg, ...mode, '-q', src, `target1:${remote}/scp-${tag}.bin`]);
      expect(up.code, up.stderr).toBe(0);
      const back = path.join(files, `scp-back-${tag}.bin`);
      const down = await run(alice, 'scp', ['-F', cfg, ...mode, '-q', `target1:${remote}/scp-${tag}.bin`, back]);
      expect(down.code, down.stderr).toBe(0);
      expect(sha256sum(`${remote}/scp-${tag}.bin`)).toBe(want);
      expect(sha256sum(back)).toBe(want);
    }
    expect(closeOf(`${remote}/scp-sftp.bin`, 'upload')).toMatchObject({ size: 700_001, sha256: want });
    expect(closeOf(`${remote}/scp-sftp.bin`, 'download')).toMatchObject({ size: 700_001, sha256: want });
    const legacy = events('scp.file').filter((e) => e.path === `${remote}/scp-legacy.bin`);
    expect(legacy.map((e) => [e.direction, e.size, e.sha256, e.user])).toEqual([['upload', 700_001, want, 'alice'], ['download', 700_001, want, 'alice']]);
  }, 300_000);

  it('command mode: scp -O up and down, and rsync -a of a small tree (its file list read from the stream)', async () => {
    const wrapper = commandModeWrapper(alice);
    const src = path.join(files, 'cmd.bin');
    fs.writeFileSync(src, randomBytes(50_000));
    const want = sha256sum(src);
    const up = await run(alice, 'scp', ['-O', '-S', wrapper, '-q', src, `target1:${remote}/cmd.bin`]);
    expect(up.code, up.stderr).toBe(0);
    const down = await run(alice, 'scp', ['-O', '-S', wrapper, '-q', `target1:${remote}/cmd.bin`, path.join(files, 'cmd-back.bin')]);
    expect(down.code, down.stderr).toBe(0);
    expect(sha256sum(`${remote}/cmd.bin`)).toBe(want);
    expect(events('scp.file').slice(-2).map((e) => [e.direction, e.path, e.size, e.sha256])).toEqual([
      ['upload', `${remote}/cmd.bin`, 50_000, want], ['download', `${remote}/cmd.bin`, 50_000, want],
    ]);

    const tree = path.join(files, 'tree');
    fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'one.txt'), 'one\n');
    fs.writeFileSync(path.join(tree, 'sub', 'two.bin'), randomBytes(10_000));
    const sync = await run(alice, 'rsync', ['-a', '-e', wrapper, `${tree}/`, `target1:${remote}/tree/`]);
    expect(sync.code, sync.stderr).toBe(0);
    expect(sha256sum(`${remote}/tree/sub/two.bin`)).toBe(sha256sum(path.join(tree, 'sub', 'two.bin')));
    const ch = events('session.channel').at(-1)!;
    expect(String(ch.command)).toMatch(/^rsync --server /);
    const shown = await ended(String(ch.session));
    // rsync's file list, read from the sender's stream: names relative to the root, sizes, no hash.
    expect(events('rsync.transfer').at(-1)).toMatchObject({ session: ch.session, channel: ch.channel, user: 'alice', host: 'target1', direction: 'upload', fileList: 'read', entries: 4 });
    expect(events('rsync.file').filter((e) => e.session === ch.session).map((e) => [e.name, e.type, e.size, e.root])).toEqual([
      ['one.txt', 'file', 4, `${remote}/tree/`], ['sub/two.bin', 'file', 10_000, `${remote}/tree/`],
    ]);
    expect(shown.files.map((f) => [f.protocol, f.direction, f.path, f.size, f.sha256])).toEqual([
      ['rsync', 'upload', 'one.txt', 4, 'unavailable'], ['rsync', 'upload', 'sub/two.bin', 10_000, 'unavailable'],
    ]);
    const row = ghJson<{ channels: { stdinBytes: number }[] }>(w.data, ['sessions', 'show', String(ch.session)]).channels[0]!;
    expect(row.stdinBytes).toBeGreaterThan(10_000);
  }, 300_000);

  it('rsync -a of a small tree through -J', async () => {
    const cfg = w.jumpConfig(alice);
    const tree = path.join(files, 'tree2');
    fs.mkdirSync(path.join(tree, 'd'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'd', 'f.bin'), randomBytes(20_000));
    fs.writeFileSync(path.join(tree, 'top.txt'), 'x'.repeat(70_000)); // several literal chunks, compressible
    fs.symlinkSync('top.txt', path.join(tree, 'ln'));
    const push = await run(alice, 'rsync', ['-az', '-e', `ssh -F ${cfg}`, `${tree}/`, `target1:${remote}/tree2/`]);
    expect(push.code, push.stderr).toBe(0);
    expect(sha256sum(`${remote}/tree2/d/f.bin`)).toBe(sha256sum(path.join(tree, 'd', 'f.bin')));
    fs.appendFileSync(`${remote}/tree2/top.txt`, 'changed'); // the pull sends a delta with matches
    const pull = await run(alice, 'rsync', ['-a', '-e', `ssh -F ${cfg}`, `target1:${remote}/tree2/`, `${tree}/`]);
    expect(pull.code, pull.stderr).toBe(0);
    const [up, down] = events('rsync.transfer').slice(-2);
    expect([up, down].map((e) => [e!.user, e!.direction, e!.fileList, e!.entries])).toEqual([['alice', 'upload', 'read', 5], ['alice', 'download', 'read', 5]]);
    for (const [ev, direction] of [[up!, 'upload'], [down!, 'download']] as const) {
      const listed = events('rsync.file').filter((e) => e.session === ev.session).map((e) => [e.direction, e.name, e.type, e.size]);
      expect(listed).toEqual(expect.arrayContaining([[direction, 'd/f.bin', 'file', 20_000], [direction, 'ln', 'symlink', 0]]));
      expect(listed).toContainEqual([direction, 'top.txt', 'file', direction === 'upload' ? 70_000 : 70_007]);
      expect(listed).toHaveLength(3);
    }
  }, 240_000);

  it('sftp-read: downloads work; put, rename and rm are refused with permission denied and audited; the target is untouched', async () => {
    const cfg = w.jumpConfig(rita);
    fs.writeFileSync(`${remote}/ro.bin`, randomBytes(90_000));
    const back = path.join(files, 'ro-back.bin');
    const got = await sftpBatch(rita, cfg, [`ls ${remote}`, `get ${remote}/ro.bin ${back}`]);
    expect(got.code, got.stderr).toBe(0);
    expect(sha256sum(back)).toBe(sha256sum(`${remote}/ro.bin`));
    expect(closeOf(`${remote}/ro.bin`, 'download')).toMatchObject({ user: 'rita', sha256: sha256sum(back) });

    const local = path.join(files, 'rita-up.bin');
    fs.writeFileSync(local, 'should never arrive\n');
    const before = events('sftp.denied').length;
    for (const line of [`put ${local} ${remote}/rita-up.bin`, `rename ${remote}/ro.bin ${remote}/moved.bin`, `rm ${remote}/ro.bin`, `mkdir ${remote}/ritadir`]) {
      const r = await sftpBatch(rita, cfg, [line]);
      expect(r.code, line).not.toBe(0);
      expect(r.stderr, line).toMatch(/[Pp]ermission denied/);
    }
    expect(fs.existsSync(`${remote}/rita-up.bin`)).toBe(false);
    expect(fs.existsSync(`${remote}/ro.bin`)).toBe(true);
    expect(fs.existsSync(`${remote}/moved.bin`)).toBe(false);
    expect(fs.existsSync(`${remote}/ritadir`)).toBe(false);
    const denied = events('sftp.denied').slice(before);
    expect(denied.map((e) => [e.user, e.op, e.path])).toEqual([
      ['rita', 'open', `${remote}/rita-up.bin`], ['rita', 'rename', `${remote}/ro.bin`], ['rita', 'remove', `${remote}/ro.bin`], ['rita', 'mkdir', `${remote}/ritadir`],
    ]);
    expect(ghOk(w.data, ['audit', '--type', 'sftp.denied'])).toContain('(sftp-read)');
  }, 300_000);

  it('sftp-read: scp -O and rsync uploads are refused at the gate, downloads work', async () => {
    const cfg = w.jumpConfig(rita);
    const src = path.join(files, 'rita2.bin');
    fs.writeFileSync(src, 'no\n');
    const up = await run(rita, 'scp', ['-F', cfg, '-O', '-q', src, `target1:${remote}/rita2.bin`]);
    expect(up.code).not.toBe(0);
    // rsync in command mode: over -J, rsync kills its ssh on the refusal and the ProxyJump helper
    // process it leaves behind keeps the test's pipes open (see the report).
    const wrapper = commandModeWrapper(rita);
    const push = await run(rita, 'rsync', ['-a', '-e', wrapper, src, `target1:${remote}/rita3.bin`]);
    expect(push.code).not.toBe(0);
    expect(fs.existsSync(`${remote}/rita2.bin`) || fs.existsSync(`${remote}/rita3.bin`)).toBe(false);
    const denied = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'access.denied']).map((e) => e.data).filter((d) => d.user === 'rita');
    expect(denied.slice(-2).map((d) => [d.action, d.reason])).toEqual([['sftp', 'right_not_granted'], ['sftp', 'right_not_granted']]);

    fs.writeFileSync(`${remote}/ro2.bin`, randomBytes(30_000));
    const want = sha256sum(`${remote}/ro2.bin`);
    const down = await run(rita, 'scp', ['-F', cfg, '-O', '-q', `target1:${remote}/ro2.bin`, path.join(files, 'rita-scp-back.bin')]);
    expect(down.code, down.stderr).toBe(0);
    expect(sha256sum(path.join(files, 'rita-scp-back.bin'))).toBe(want);
    expect(events('scp.file').at(-1)).toMatchObject({ user: 'rita', direction: 'download', path: `${remote}/ro2.bin`, sha256: want });
    const pull = await run(rita, 'rsync', ['-a', '-e', wrapper, `target1:${remote}/ro2.bin`, path.join(files, 'rita-rsync-back.bin')]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(sha256sum(path.join(files, 'rita-rsync-back.bin'))).toBe(want);

    // access check explains the right.
    expect(ghOk(w.data, ['access', 'check', 'rita', 'target1', w.login, '--action', 'sftp-read'])).toMatch(/^allow: rita may sftp-read/);
    const check = gh(w.data, ['access', 'check', 'rita', 'target1', w.login, '--action', 'sftp']);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/rights sftp-read\): does not include the sftp right/);
  }, 300_000);
});
