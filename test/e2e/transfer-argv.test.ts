import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { runSsh, startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

/**
 * The `sftp` right covers file transfers only: a command that merely starts like one
 * (`scp -t /x; id`) is exec, needs the exec right and is recorded as a terminal. The real
 * transfer clients (scp -O, rsync) still work with the sftp right alone.
 */
type AuditRow = { type: string; data: Record<string, unknown> };
type Shown = { endedAt: string | null; recordings: { file: string; kind: string }[] };
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe.runIf(haveOpenSsh())('file transfer = the whole argv of a transfer client', () => {
  let w: World;
  let sam: Operator; // sftp right only
  let xena: Operator; // exec and sftp
  let target: string;
  const files = tempDir('gatehouse-transfer-');

  const channels = () => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).map((e) => e.data);

  const run = (op: Operator, cmd: 'scp' | 'rsync', args: string[]): Promise<SshResult> =>
    runSsh(args, w.sshCommand(op, []).env, undefined, 60_000, cmd);

  beforeAll(async () => {
    w = await startWorld({ config: 'auth:\n  mfaGrace: 1h\n' });
    target = `${w.login}@target1`;
    sam = w.operator('sam');
    xena = w.operator('xena');
    ghOk(w.data, ['grant', 'add', '--user', 'sam', '--host', 'target1', '--login', w.login, '--allow', 'sftp']);
    ghOk(w.data, ['grant', 'add', '--user', 'xena', '--host', 'target1', '--login', w.login, '--allow', 'exec,sftp']);
  }, 240_000);
  afterAll(async () => {
    await w?.stop();
    if (w) for (const d of [w.dir, w.sshd.dir]) fs.rmSync(d, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  }, 120_000);

  it('with the sftp right only, a command that starts like scp is refused as exec', async () => {
    const marker = path.join(files, 'ran');
    for (const command of [`scp -t /tmp/x; touch ${marker}`, `scp -t /tmp/x && touch ${marker}`, `scp -t $(touch ${marker})`]) {
      const r = await w.ssh(sam, [target, command]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/sam may log in to target1 as \S+ but not use exec/);
    }
    expect(fs.existsSync(marker)).toBe(false);
    const denied = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'access.denied']).filter((e) => e.data.user === 'sam');
    expect(denied.map((e) => e.data.action)).toEqual(['exec', 'exec', 'exec']);
    expect(channels().some((c) => c.user === 'sam')).toBe(false);
  }, 240_000);

  it('with the exec right, the same command runs and is recorded as a terminal, not a transfer', async () => {
    const r = await w.ssh(xena, [target, 'scp -t /tmp/x; id -un']);
    expect(r.stdout).toContain(`${w.login}\n`);
    const ch = channels().at(-1)!;
    expect(ch).toMatchObject({ user: 'xena', kind: 'exec', command: 'scp -t /tmp/x; id -un' });
    const sid = ch.session as string;
    await expect.poll(() => ghJson<Shown>(w.data, ['sessions', 'show', sid]).endedAt, { timeout: 10_000 }).not.toBeNull();
    const shown = ghJson<Shown>(w.data, ['sessions', 'show', sid]);
    expect(shown.recordings.map((x) => x.kind)).toEqual(['terminal']);
    const cast = fs.readFileSync(path.join(w.data, 'recordings', shown.recordings[0]!.file), 'utf8');
    const output = cast.trim().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'o');
    expect(output.map((e) => e[2]).join('')).toContain(w.login);
    expect(cast).not.toContain('file transfer:');
  }, 240_000);

  it('real scp -O and rsync, both directions, work with the sftp right only and are recorded as transfers', async () => {
    const cfg = w.jumpConfig(sam);
    const src = path.join(files, 'up.bin');
    fs.writeFileSync(src, randomBytes(300_000));
    const remote = path.join(files, 'remote');
    fs.mkdirSync(remote);
    const before = channels().length;

    const up = await run(sam, 'scp', ['-F', cfg, '-O', '-q', src, `target1:${remote}/scp.bin`]);
    expect(up.code, up.stderr).toBe(0);
    const down = await run(sam, 'scp', ['-F', cfg, '-O', '-q', `target1:${remote}/scp.bin`, path.join(files, 'scp-back.bin')]);
    expect(down.code, down.stderr).toBe(0);
    expect(sha(path.join(files, 'scp-back.bin'))).toBe(sha(src));

    const push = await run(sam, 'rsync', ['-a', '-e', `ssh -F ${cfg}`, src, `target1:${remote}/rsync.bin`]);
    expect(push.code, push.stderr).toBe(0);
    const pull = await run(sam, 'rsync', ['-a', '-e', `ssh -F ${cfg}`, `target1:${remote}/rsync.bin`, path.join(files, 'rsync-back.bin')]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(sha(path.join(files, 'rsync-back.bin'))).toBe(sha(src));

    const mine = channels().slice(before).filter((c) => c.user === 'sam');
    expect(mine.map((c) => String(c.command).split(' ').slice(0, 2).join(' '))).toEqual(['scp -t', 'scp -f', 'rsync --server', 'rsync --server']);
    expect(String(mine[3]!.command)).toMatch(/^rsync --server --sender /);
    for (const c of mine) {
      const sid = c.session as string;
      await expect.poll(() => ghJson<Shown>(w.data, ['sessions', 'show', sid]).endedAt, { timeout: 10_000 }).not.toBeNull();
      expect(ghJson<Shown>(w.data, ['sessions', 'show', sid]).recordings.map((x) => x.kind)).toEqual(['transfer']);
    }
  }, 300_000);
});
