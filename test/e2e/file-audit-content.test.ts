import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { runSsh, startWorld, type Operator, type SshResult, type World } from '../helpers/world.js';

/**
 * Content capture (`recording.fileContent.maxBytes`), with the stock clients: whole files up to the
 * limit are stored beside the recording and bound into the recordings chain; a larger file is not
 * stored at all; an auditor downloads a stored file (audited) and gets exactly the bytes that moved;
 * `verify` and the download both catch a tampered content file.
 */
type Shown = { endedAt: string | null; files: { direction: string; path: string; size: number; sha256: string }[] };
const sha256sum = (f: string) => execFileSync('sha256sum', [f], { encoding: 'utf8' }).split(' ')[0]!;
const MAX = 200_000;

function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

describe.runIf(haveOpenSsh())('file audit: content capture', () => {
  let w: World;
  let alice: Operator;
  let files: string;
  let remote: string;
  /** The first test's session, its upload's number in the files list and its SHA-256 (for the web test). */
  let first: { sid: string; n: string; sha256: string } | null = null;

  const events = (type: string) => ghJson<{ actor: string; data: Record<string, unknown> }[]>(w.data, ['audit', '--type', type]);
  const run = (op: Operator, cmd: string, args: string[]): Promise<SshResult> => runSsh(args, w.sshCommand(op, []).env, undefined, 120_000, cmd);
  async function ended(sid: string): Promise<Shown> {
    await expect.poll(() => ghJson<Shown>(w.data, ['sessions', 'show', sid]).endedAt, { timeout: 20_000 }).not.toBeNull();
    return ghJson<Shown>(w.data, ['sessions', 'show', sid]);
  }

  beforeAll(async () => {
    w = await startWorld({ config: `auth:\n  mfaGrace: 1h\nrecording:\n  fileContent:\n    maxBytes: ${MAX}\n` });
    files = tempDir('gatehouse-content-');
    remote = path.join(files, 'remote');
    fs.mkdirSync(remote);
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
  }, 240_000);
  afterAll(async () => {
    await w?.stop();
    if (w) for (const d of [w.dir, w.sshd.dir]) fs.rmSync(d, { recursive: true, force: true });
    if (files) fs.rmSync(files, { recursive: true, force: true });
  }, 120_000);

  /** An auditor in the web UI: the session page links the stored file; the download is the file, audited. */
  async function webDownload(): Promise<void> {
    const PASSWORD = 'correct horse battery staple 42';
    const ada = w.operator('ada', { roles: ['auditor'] });
    ghOk(w.data, ['user', 'password', 'ada'], { input: `${PASSWORD}\n` });
    const cookies = new Map<string, string>();
    const keep = (res: Response) => { for (const c of res.headers.getSetCookie()) { const [kv] = c.split(';'); const i = kv!.indexOf('='); cookies.set(kv!.slice(0, i), kv!.slice(i + 1)); } return res; };
    const cookie = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const form = await keep(await fetch(`${w.web}/login`)).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form)![1]!;
    const code = execFileSync('oathtool', ['--totp', '-b', ada.secret], { encoding: 'utf8' }).trim();
    const login = keep(await fetch(`${w.web}/login`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookie() },
      body: new URLSearchParams({ _csrf: csrf, username: 'ada', password: PASSWORD, code }).toString(),
    }));
    expect(login.headers.get('location')).not.toMatch(/error/);
    const { sid, n, sha256 } = first!;
    const pageHtml = await (await fetch(`${w.web}/sessions/${sid}`, { headers: { cookie: cookie() } })).text();
    expect(pageHtml).toContain(`href="/sessions/${sid}/file-${n}"`);
    const res = await fetch(`${w.web}/sessions/${sid}/file-${n}`, { headers: { cookie: cookie() } });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(createHash('sha256').update(body).digest('hex')).toBe(sha256);
    expect(events('file.downloaded').at(-1)).toMatchObject({ actor: 'web:ada', data: { session: sid, how: 'web', sha256 } });
    // Without a login: nothing.
    expect((await fetch(`${w.web}/sessions/${sid}/file-${n}`, { redirect: 'manual' })).status).not.toBe(200);
  }

  it('sftp put/get and scp -O: whole files within the limit are stored and downloadable; a larger one is not stored; verify and the download catch tampering', async () => {
    const cfg = w.jumpConfig(alice);
    const small = path.join(files, 'small.bin');
    const big = path.join(files, 'big.bin');
    fs.writeFileSync(small, randomBytes(150_000)); // several pipelined 32 KiB writes
    fs.writeFileSync(big, randomBytes(MAX + 1));
    const back = path.join(files, 'small-back.bin');
    const batch = path.join(files, 'batch');
    fs.writeFileSync(batch, [`put ${small} ${remote}/small.bin`, `get ${remote}/small.bin ${back}`, `put ${big} ${remote}/big.bin`].join('\n') + '\n');
    const r = await run(alice, 'sftp', ['-F', cfg, '-b', batch, 'target1']);
    expect(r.code, r.stderr).toBe(0);
    const scp = path.join(files, 'scp.bin');
    fs.writeFileSync(scp, randomBytes(40_000));
    const up = await run(alice, 'scp', ['-F', cfg, '-O', '-q', scp, `target1:${remote}/scp.bin`]);
    expect(up.code, up.stderr).toBe(0);

    const closes = events('sftp.close').map((e) => e.data);
    const sid = String(closes.at(-1)!.session);
    const want = sha256sum(small);
    expect(closes.map((c) => [c.direction, c.path, c.sha256, c.content])).toEqual([
      ['upload', `${remote}/small.bin`, want, 'stored'],
      ['download', `${remote}/small.bin`, want, 'stored'],
      ['upload', `${remote}/big.bin`, sha256sum(big), 'too large'],
    ]);
    expect(events('scp.file').at(-1)!.data).toMatchObject({ path: `${remote}/scp.bin`, sha256: sha256sum(scp), content: 'stored' });
    const shown = await ended(sid);
    const scpSid = String(events('scp.file').at(-1)!.data.session);
    await ended(scpSid);

    // Exactly the stored files are on disk: the too-large one left nothing, not even a truncated copy.
    const stored = walk(path.join(w.data, 'recordings')).filter((f) => /\.files\//.test(f));
    expect(stored.map((f) => fs.statSync(f).size).sort((a, b) => a - b)).toEqual([40_000, 150_000, 150_000]);
    for (const f of stored) expect(fs.statSync(f).mode & 0o777).toBe(0o600);

    // The auditor's download: the same bytes, audited.
    const n = (p: string, d: string) => String(shown.files.findIndex((f) => f.path === p && f.direction === d) + 1);
    const got = path.join(files, 'got-upload.bin');
    ghOk(w.data, ['sessions', 'file', sid, n(`${remote}/small.bin`, 'upload'), '--out', got]);
    expect(sha256sum(got)).toBe(want);
    const gotDown = path.join(files, 'got-download.bin');
    ghOk(w.data, ['sessions', 'file', sid, n(`${remote}/small.bin`, 'download'), '--out', gotDown]);
    expect(sha256sum(gotDown)).toBe(want);
    expect(events('file.downloaded').map((e) => e.data)).toEqual([
      expect.objectContaining({ session: sid, sessionUser: 'alice', path: `${remote}/small.bin`, sha256: want, size: 150_000, how: 'cli' }),
      expect.objectContaining({ session: sid, path: `${remote}/small.bin`, how: 'cli' }),
    ]);
    first = { sid, n: n(`${remote}/small.bin`, 'upload'), sha256: want };
    const gotScp = path.join(files, 'got-scp.bin');
    ghOk(w.data, ['sessions', 'file', scpSid, '1', '--out', gotScp]);
    expect(sha256sum(gotScp)).toBe(sha256sum(scp));
    // Too large: nothing to download, and no file written.
    const tooBig = gh(w.data, ['sessions', 'file', sid, n(`${remote}/big.bin`, 'upload'), '--out', path.join(files, 'no.bin')]);
    expect(tooBig.code).not.toBe(0);
    expect(tooBig.stderr).toMatch(/no content stored/);
    expect(fs.existsSync(path.join(files, 'no.bin'))).toBe(false);

    // The export bundle carries the stored contents beside the recordings, listed in the manifest.
    const exported = path.join(files, 'export-1');
    ghOk(w.data, ['sessions', 'export', sid, '--out', exported]);
    type Content = { direction: string; path: string; sha256: string; file: string | null; verdict: string };
    const contents = (JSON.parse(fs.readFileSync(path.join(exported, 'manifest.json'), 'utf8')) as { contents: Content[] }).contents;
    expect(contents.map((c) => [c.direction, c.path, c.sha256, c.verdict])).toEqual([
      ['upload', `${remote}/small.bin`, want, 'intact'],
      ['download', `${remote}/small.bin`, want, 'intact'],
    ]);
    for (const c of contents) expect(sha256sum(path.join(exported, c.file!))).toBe(want);

    // verify: intact, content files included; then one content file is edited.
    await webDownload();
    const ok = gh(w.data, ['verify', sid]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout.match(/\.files\/\d+/g)?.length).toBe(2);
    const victim = stored.find((f) => f.includes(`${sid}-`))!;
    const bytes = fs.readFileSync(victim);
    bytes[1000] ^= 0xff;
    fs.writeFileSync(victim, bytes);
    const bad = gh(w.data, ['verify', sid]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/MODIFIED.*\.files\//);
    const refused = gh(w.data, ['sessions', 'file', sid, '1', '--out', path.join(files, 'tampered.bin')]);
    const refused2 = gh(w.data, ['sessions', 'file', sid, '2', '--out', path.join(files, 'tampered2.bin')]);
    expect([refused.stderr, refused2.stderr].join('\n')).toMatch(/content file is MODIFIED/);
    // An export after the edit says so, and does not hand out the edited bytes as the session's.
    const exported2 = path.join(files, 'export-2');
    ghOk(w.data, ['sessions', 'export', sid, '--out', exported2]);
    const after = (JSON.parse(fs.readFileSync(path.join(exported2, 'manifest.json'), 'utf8')) as { contents: Content[] }).contents;
    expect(after.map((c) => c.verdict).sort()).toEqual(['intact', 'modified']);
    expect(after.find((c) => c.verdict === 'modified')!.file).toBeNull();
    expect(fs.readdirSync(exported2).filter((f) => f.includes('.file-'))).toHaveLength(1);
  }, 300_000);
});
