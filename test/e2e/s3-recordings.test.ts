import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gh, ghJson, ghOk, tempDir } from '../helpers/cli.js';
import { startS3, type S3Server } from '../helpers/s3.js';
import { haveOpenSsh } from '../helpers/sshd.js';
import { startWorld, type Operator, type World } from '../helpers/world.js';
import { webLogin } from '../helpers/weblogin.js';

/**
 * Recordings on S3-compatible storage, end to end: the built binary with recording.storage.s3
 * pointing at s3rver (credentials only in the AWS_* environment), a stock ssh client, a real sshd.
 */
type AuditRow = { type: string; data: Record<string, unknown> };
const PASSWORD = 'auditors-passphrase-1';
const PREFIX = 'gatehouse/';

const lastSession = (w: World) => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).at(-1)!.data.session as string;

function spoolFiles(w: World, sid: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.startsWith(`${sid}-`)) found.push(path.join(d, e.name));
    }
  };
  const root = path.join(w.data, 'recordings');
  if (fs.existsSync(root)) walk(root);
  return found;
}

describe.runIf(haveOpenSsh())('recordings on S3-compatible storage (s3rver)', () => {
  let s3: S3Server;
  let client: S3Client;
  let w: World;
  let alice: Operator;
  let ada: Operator;
  const saved = { ...process.env };

  beforeAll(async () => {
    s3 = await startS3({ bucket: 'gh-recordings' });
    client = s3.client();
    // The server and every CLI run get the credentials the standard way: AWS_* variables.
    Object.assign(process.env, s3.env);
    w = await startWorld({ config: `auth:\n  mfaGrace: 1h\n${s3.config(PREFIX)}` });
    alice = w.operator('alice');
    ghOk(w.data, ['grant', 'add', '--user', 'alice', '--host', 'target1', '--login', w.login]);
    ada = w.operator('ada', { roles: ['auditor'] });
    ghOk(w.data, ['user', 'password', 'ada'], { input: `${PASSWORD}\n` });
  }, 120_000);
  afterAll(async () => {
    await w?.stop();
    await s3?.stop();
    for (const k of Object.keys(s3?.env ?? {})) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
  });

  // The operator's CLI runs with the server's config (where the recordings are), as in production.
  const cli = (args: string[]) => gh(w.data, [...args, '--config', path.join(w.dir, 'gatehouse.yaml')]);
  const cliJson = <T>(args: string[]): T => {
    const r = cli([...args, '--json']);
    if (r.code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  const objectsOf = async (sid: string) => ((await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: PREFIX }))).Contents ?? [])
    .map((o) => o.Key!).filter((k) => k.endsWith(`/${sid}-0.cast`));
  const getObject = async (key: string) => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }))).Body!.transformToByteArray());
  const uploaded = async (sid: string): Promise<string> => {
    await expect.poll(() => objectsOf(sid), { timeout: 30_000, interval: 200 }).toHaveLength(1);
    await expect.poll(() => spoolFiles(w, sid), { timeout: 30_000, interval: 200 }).toEqual([]);
    return (await objectsOf(sid))[0]!;
  };

  let sid = '';
  let key = '';
  let original = Buffer.alloc(0);

  it('a recorded ssh session is uploaded when it closes, and its spool file is gone', async () => {
    const r = await w.ssh(alice, [`${w.login}@target1`, 'echo "the s3-zebra-unicorn was here"']);
    expect(r).toMatchObject({ code: 0, stdout: 'the s3-zebra-unicorn was here\n' });
    sid = lastSession(w);
    key = await uploaded(sid);
    expect(key).toMatch(new RegExp(`^${PREFIX}\\d{4}/\\d{2}/\\d{2}/${sid}-0\\.cast$`));
    original = await getObject(key);
    expect(original.toString()).toContain('the s3-zebra-unicorn was here');
    // The signed row names this object's bytes.
    const closed = ghJson<AuditRow[]>(w.data, ['audit', '--type', 'recording.closed']).find((e) => e.data.session === sid)!;
    expect(closed.data.sha256).toBe(createHash('sha256').update(original).digest('hex'));
    expect(w.gatehouse.stdout()).toContain('recording uploaded to object storage');
    expect(await (await fetch(`${w.web}/metrics`)).text()).toMatch(/^gatehouse_recording_uploads_pending 0$/m);
    // Neither credential reaches the server's log.
    expect(w.gatehouse.stdout() + w.gatehouse.stderr()).not.toContain(s3.env.AWS_SECRET_ACCESS_KEY + '"');
  });

  it('verify, sessions play / export and search read it from the bucket', async () => {
    const v = cli(['verify', sid]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`${sid}-0\\s+intact`));
    const play = cli(['sessions', 'play', sid, '--speed', '100']);
    expect(play.code, play.stdout + play.stderr).toBe(0);
    expect(play.stdout).toContain('the s3-zebra-unicorn was here');
    const out = path.join(tempDir(), 'export');
    const manifest = cliJson<{ recordings: { file: string; verdict: string }[] }>(['sessions', 'export', sid, '--out', out]);
    expect(manifest.recordings).toMatchObject([{ file: `${sid}-0.cast`, verdict: 'intact' }]);
    expect(fs.readFileSync(path.join(out, `${sid}-0.cast`))).toEqual(original);
    const found = ghJson<{ sessions?: { id: string }[]; rows?: { id: string }[] }>(w.data, ['sessions', 'search', 's3-zebra-unicorn']);
    expect(JSON.stringify(found)).toContain(sid);
  });

  it('the web replay serves the recording from the bucket to a logged-in auditor', async () => {
    const cookie = await webLogin(w, ada, PASSWORD);
    const res = await fetch(`${w.web}/sessions/${sid}/0.cast`, { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(original);
    // The export bundle (tar) holds the object's bytes too.
    const tar = await fetch(`${w.web}/sessions/${sid}/export.tar`, { headers: { cookie } });
    expect(tar.status).toBe(200);
    expect(Buffer.from(await tar.arrayBuffer()).includes(original)).toBe(true);
    const page = await (await fetch(`${w.web}/sessions?user=alice`, { headers: { cookie } })).text();
    expect(page).toContain('integrity-ok');
    // Without a login: nothing.
    expect((await fetch(`${w.web}/sessions/${sid}/0.cast`, { redirect: 'manual' })).status).not.toBe(200);
  });

  it('backup says the recordings are left to object-storage versioning', async () => {
    const dir = tempDir();
    const pass = path.join(dir, 'pass');
    fs.writeFileSync(pass, 'a-long-backup-passphrase-42\n', { mode: 0o600 });
    const r = cli(['backup', '--out', path.join(dir, 'b.ghb'), '--passphrase-file', pass]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/recordings are in object storage \(s3:\/\/gh-recordings\/gatehouse\/\) and are NOT in this backup/);
  });

  it('a kill -9 with a live session: at restart the recovered recording is uploaded, intact', async () => {
    const running = w.ssh(alice, [`${w.login}@target1`, 'for i in $(seq 1 100); do echo line-$i; sleep 0.05; done'], { timeoutMs: 30_000 });
    await expect.poll(() => ghJson<AuditRow[]>(w.data, ['audit', '--type', 'session.channel']).filter((e) => e.data.session !== sid).length, { timeout: 15_000 }).toBeGreaterThan(0);
    const live = lastSession(w);
    await new Promise((r) => setTimeout(r, 2500)); // at least one flush (every second) reached the spool
    expect(spoolFiles(w, live)).toHaveLength(1);
    process.kill(w.gatehouse.child.pid!, 'SIGKILL');
    expect((await running).code).not.toBe(0);
    expect(await objectsOf(live)).toEqual([]);
    // The restart is retried (bounded) in case the node registry still holds the killed process's
    // name until its heartbeat times out (node.deadAfter): what is tested here is the upload.
    const until = Date.now() + 45_000;
    for (;;) {
      try { await w.restart(); break; } catch (err) {
        if (Date.now() > until || !/another gatehouse server named/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 2_000));
      }
    }
    const k = await uploaded(live);
    expect((await getObject(k)).toString()).toContain('line-1');
    const v = cli(['verify', live]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/intact \(interrupted session\)/);
  }, 150_000);

  it('attacker: a recording object overwritten in the bucket makes verify fail', async () => {
    const forged = Buffer.from(original.toString().replace('s3-zebra-unicorn', 's3-zebra-UNICORN'));
    expect(forged.length).toBe(original.length);
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: forged }));
    const v = cli(['verify', sid]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(new RegExp(`${sid}-0\\s+MODIFIED`));
    // Deleted from the bucket: MISSING (retention's deletions carry a signed tombstone; this has none).
    await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
    const gone = cli(['verify', sid]);
    expect(gone.code).toBe(1);
    expect(gone.stdout).toMatch(new RegExp(`${sid}-0\\s+MISSING`));
    // Put back: the rest of the file's sessions stay verifiable.
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: original }));
    expect(cli(['verify', sid]).code).toBe(0);
  });
});
