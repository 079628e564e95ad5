import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pino from 'pino';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../../src/config/load.js';
import { signer } from '../../../../src/recorder/recorder.js';
import { recoverRecordings } from '../../../../src/recorder/recovery.js';
import { createRecordingStorage, S3RecordingStorage } from '../../../../src/recorder/storage/index.js';
import { objectKey } from '../../../../src/recorder/storage/s3.js';
import { hostKeyVerifier, verifyRecordings } from '../../../../src/recorder/verify.js';
import { sweepRetention } from '../../../../src/ops/retention.js';
import { tempDir } from '../../../helpers/cli.js';
import { startS3, type S3Server } from '../../../helpers/s3.js';
import { admin, tempStore } from '../../../helpers/store.js';

const REL = '2026/11/30/sess-1-0.cast';
const CAST = '{"version":2,"width":80,"height":24}\n[0.1,"o","hello"]\n';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { log, lines };
}

async function until(check: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out: ${what}`);
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('S3 recording storage (against s3rver)', () => {
  let s3: S3Server;
  let client: S3Client;
  let n = 0;
  const stores: S3RecordingStorage[] = [];
  beforeAll(async () => {
    s3 = await startS3();
    client = s3.client();
  }, 30_000);
  afterAll(async () => {
    for (const st of stores) await st.stop(0);
    await s3?.stop();
  });

  /** A storage on a fresh bucket prefix and spool, with fast retries. */
  function storage(o: { bucket?: string; partSize?: number } = {}) {
    const spool = tempDir();
    const { log, lines } = capture();
    const st = new S3RecordingStorage(spool, { endpoint: s3.endpoint, bucket: o.bucket ?? s3.bucket, region: 'us-east-1', prefix: `t${++n}/`, forcePathStyle: true }, {
      log, retryMs: 100, maxRetryMs: 400, partSize: o.partSize,
      client: s3.client(),
    });
    stores.push(st);
    const put = (rel: string, data: Buffer | string) => {
      const f = st.spoolFile(rel);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, data);
      return f;
    };
    return { st, spool, lines, put, prefix: `t${n}/` };
  }

  const head = (key: string, bucket = s3.bucket) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const getText = async (key: string) => (await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }))).Body!.transformToString();

  it('uploads a closed recording, confirms it, and only then removes the spool copy; reads go to the bucket', async () => {
    const { st, put, prefix } = storage();
    const file = put(REL, CAST);
    // While it is in the spool, every read is served from there.
    expect(await st.read(REL)).toEqual(Buffer.from(CAST));
    st.closed(REL);
    await until(() => !fs.existsSync(file), 'spool copy removed');
    expect(st.pending()).toBe(0);
    expect(await getText(`${prefix}${REL}`)).toBe(CAST);
    expect((await head(`${prefix}${REL}`)).ContentLength).toBe(CAST.length);
    // Now from the bucket: stat, read (whole and the first bytes), digest, stream.
    expect(await st.stat(REL)).toEqual({ size: CAST.length });
    expect((await st.read(REL))!.toString()).toBe(CAST);
    expect((await st.read(REL, 5))!.toString()).toBe('{"ver');
    expect(await st.digest(REL)).toEqual({ size: CAST.length, sha256: sha(CAST) });
    const chunks: Buffer[] = [];
    for await (const c of (await st.stream(REL))!) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe(CAST);
    // Missing recordings are null, not errors.
    for (const fn of ['stat', 'read', 'digest', 'stream'] as const) expect(await st[fn]('2026/11/30/nope-0.cast')).toBeNull();
    // Delete: the object goes; a second delete finds nothing.
    expect(await st.remove(REL)).toBe(true);
    await expect(head(`${prefix}${REL}`)).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    expect(await st.remove(REL)).toBe(false);
  });

  it('lists what it wrote under its prefix only', async () => {
    const { st, put, prefix } = storage();
    const rels = ['2026/11/30/a-0.cast', '2026/11/30/a-1.cast', '2026/12/01/b-0.cast'];
    for (const r of rels) { put(r, CAST); st.closed(r); }
    // The same recording handed over twice (a restart's resume racing a close) is uploaded once.
    st.closed(rels[0]!);
    expect(st.pending()).toBe(3);
    expect(await st.drain(20_000)).toBe(true);
    const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
    expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual(rels.map((r) => prefix + r));
  });

  it('uploads a recording larger than the part size in several parts (multipart), byte for byte', async () => {
    const { st, put, prefix, lines } = storage({ partSize: 5 * 1024 * 1024 });
    const big = Buffer.alloc(12 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.write(`[${i},"o","${'x'.repeat(40)}"]\n`, i);
    const file = put(REL, big);
    st.closed(REL);
    await until(() => !fs.existsSync(file), 'spool copy removed', 60_000);
    const h = await head(`${prefix}${REL}`);
    expect(lines.find((l) => l.msg === 'recording uploaded to object storage')).toMatchObject({ multipart: true, size: big.length });
    expect(h.ETag).toBeTruthy();
    expect(h.ContentLength).toBe(big.length);
    expect(await st.digest(REL)).toEqual({ size: big.length, sha256: sha(big) });
  }, 90_000);

  it('a failed upload keeps the spool copy, is logged and retried with backoff until it succeeds', async () => {
    const bucket = `late-${Date.now()}`;
    const { st, put, lines, prefix } = storage({ bucket });
    const file = put(REL, CAST);
    st.closed(REL);
    await until(() => lines.filter((l) => l.msg === 'recording upload failed: it stays in the spool and is retried').length >= 2, 'two failed attempts logged');
    expect(fs.readFileSync(file, 'utf8')).toBe(CAST);
    const failures = lines.filter((l) => l.level === 50);
    expect(failures[0]).toMatchObject({ file: REL, key: `${prefix}${REL}`, attempt: 1, retryInMs: 100 });
    expect(failures[1]).toMatchObject({ attempt: 2, retryInMs: 200 });
    // No credential or signature in what was logged.
    expect(JSON.stringify(lines)).not.toMatch(/S3RVER|Signature=|Credential=/);
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    await until(() => !fs.existsSync(file), 'uploaded once the bucket exists');
    expect((await head(`${prefix}${REL}`, bucket)).ContentLength).toBe(CAST.length);
  }, 40_000);

  it('an upload the bucket does not confirm (size differs on HeadObject) keeps the spool copy', async () => {
    const spool = tempDir();
    const { log, lines } = capture();
    const real = s3.client();
    // A store that answers HeadObject with another size than was written (a cut or replaced object).
    const lying = new Proxy(real, {
      get(target, prop, recv) {
        if (prop !== 'send') return Reflect.get(target, prop, recv) as unknown;
        return async (cmd: unknown) => {
          const out = await (target.send as (c: unknown) => Promise<Record<string, unknown>>)(cmd);
          return cmd instanceof HeadObjectCommand ? { ...out, ContentLength: Number(out.ContentLength) + 1 } : out;
        };
      },
    });
    const st = new S3RecordingStorage(spool, { endpoint: s3.endpoint, bucket: s3.bucket, region: 'us-east-1', prefix: `t${++n}/`, forcePathStyle: true }, { log, retryMs: 60_000, client: lying });
    stores.push(st);
    const file = st.spoolFile(REL);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, CAST);
    st.closed(REL);
    await until(() => lines.some((l) => l.level === 50), 'failure logged');
    expect(String(lines.find((l) => l.level === 50)!.err)).toMatch(/uploaded object has/);
    expect(fs.readFileSync(file, 'utf8')).toBe(CAST);
  });

  it('stop() leaves a failing upload in the spool (for the next start)', async () => {
    const { st, put } = storage({ bucket: `never-${Date.now()}` });
    const file = put(REL, CAST);
    st.closed(REL);
    await until(() => st.pending() === 1, 'queued');
    await st.stop(1_000);
    expect(fs.readFileSync(file, 'utf8')).toBe(CAST);
  });

  it('resume() at start uploads closed recordings left in the spool, never an open one', async () => {
    const { store } = tempStore();
    const { st, put, prefix } = storage();
    await store.users.add('u', ['operator'], admin);
    const hostKey = Buffer.from(ssh2.utils.generateKeyPairSync('ed25519').private);
    for (const id of ['done', 'live']) {
      await store.sessions.open({ id, user: 'u', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'command' });
      await store.sessions.openChannel({ sessionId: id, channel: 0, kind: 'exec', command: 'x', pty: false, host: 'h', login: 'l' });
      const rel = `2026/11/30/${id}-0.cast`;
      put(rel, CAST + '[0.2,"o","par');
      await store.recordings.open({ sessionId: id, channel: 0, path: rel, kind: 'terminal' });
    }
    // The crash recovery of a node: 'done' was this node's (recovered), 'live' is treated as another node's.
    await store.sessions.get('live');
    expect(await recoverRecordings(store, st, signer(hostKey), pino({ level: 'silent' }))).toBe(2);
    // Re-open 'live' as a still-open recording of a new session to check resume skips open rows.
    await store.sessions.open({ id: 'other', user: 'u', keyFingerprint: 'SHA256:x', sourceAddr: '127.0.0.1', mode: 'command' });
    await store.sessions.openChannel({ sessionId: 'other', channel: 0, kind: 'exec', command: 'x', pty: false, host: 'h', login: 'l' });
    put('2026/11/30/other-0.cast', CAST);
    await store.recordings.open({ sessionId: 'other', channel: 0, path: '2026/11/30/other-0.cast', kind: 'terminal' });
    put('2026/11/30/stray-0.cast', CAST);
    // A file content captured beside a closed recording goes too; one beside an open recording waits.
    put('2026/11/30/done-0.files/1', 'content');
    put('2026/11/30/other-0.files/1', 'content');
    expect(await st.resume(store)).toBe(3);
    await until(() => st.pending() === 0, 'uploads done');
    // Recovery cut the partial line; what was uploaded is what the signed row says.
    expect(await getText(`${prefix}2026/11/30/done-0.cast`)).toBe(CAST);
    const report = await verifyRecordings(store, st, hostKeyVerifier(hostKey), 'done');
    expect(report.items.map((i) => i.verdict)).toEqual(['intact']);
    expect(fs.existsSync(st.spoolFile('2026/11/30/other-0.cast'))).toBe(true);
    expect(fs.existsSync(st.spoolFile('2026/11/30/stray-0.cast'))).toBe(true);
    expect(fs.existsSync(st.spoolFile('2026/11/30/other-0.files/1'))).toBe(true);
    expect(await getText(`${prefix}2026/11/30/done-0.files/1`)).toBe('content');

    // The attacker with write access to the bucket: an object overwritten (same size, too) is MODIFIED.
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}2026/11/30/done-0.cast`, Body: CAST.replace('hello', 'HELLO') }));
    const after = await verifyRecordings(store, st, hostKeyVerifier(hostKey), 'done');
    expect(after.items.map((i) => i.verdict)).toEqual(['modified']);
    expect(after.ok).toBe(false);

    // Retention deletes the object, not only a local file.
    await store.sessions.closeInterrupted();
    expect(await sweepRetention({ store, root: st, clock: { now: () => Date.now() + 365 * 86_400_000 }, log: pino({ level: 'silent' }), retention: 1 })).toMatchObject({ deleted: 2 });
    await expect(head(`${prefix}2026/11/30/done-0.cast`)).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    store.close();
  }, 40_000);
});

describe('recording storage config and keys', () => {
  it('refuses credentials in the config file: they come from the AWS environment / credential chain only', () => {
    const dir = tempDir();
    const f = path.join(dir, 'g.yaml');
    fs.writeFileSync(f, 'recording:\n  storage:\n    s3:\n      bucket: rec\n      accessKeyId: AKIA0000\n      secretAccessKey: hunter2\n');
    let message = '';
    try { loadConfig({ config: f }, {}); } catch (err) { message = (err as Error).message; }
    expect(message).toMatch(/accessKeyId|unrecognized|Unrecognized/);
    expect(message).not.toContain('hunter2');
  });

  it('the default is the local directory; S3 when configured', () => {
    const dir = tempDir();
    const f = path.join(dir, 'g.yaml');
    fs.writeFileSync(f, 'recording:\n  minFreeSpace: 0\n');
    expect(createRecordingStorage(loadConfig({ config: f }, {}), { paths: { recordings: dir } }).kind).toBe('local');
    fs.writeFileSync(f, 'recording:\n  storage:\n    s3:\n      bucket: rec\n      prefix: gh/\n      forcePathStyle: true\n      endpoint: http://127.0.0.1:9\n');
    const st = createRecordingStorage(loadConfig({ config: f }, {}), { paths: { recordings: dir } });
    expect(st.kind).toBe('s3');
    expect(st.location).toBe('s3://rec/gh/');
    void st.stop(0);
  });

  it('object keys are built from plain relative paths only', () => {
    expect(objectKey('gh', '2026/11/30/a-0.cast')).toBe('gh/2026/11/30/a-0.cast');
    expect(objectKey('', '2026/11/30/a-0.cast')).toBe('2026/11/30/a-0.cast');
    for (const bad of ['../x.cast', '/etc/passwd', '2026/../../x', '2026//x', '.hidden', '']) expect(() => objectKey('gh/', bad)).toThrow();
  });

  it('the local storage never reads or deletes outside its directory', async () => {
    const root = tempDir();
    const outside = path.join(path.dirname(root), `outside-${Date.now()}.cast`);
    const st = createRecordingStorage({ recording: { storage: {} } } as never, { paths: { recordings: root } });
    expect(await st.read(path.relative(root, outside))).toBeNull();
    expect(await st.remove('../../etc/passwd')).toBe(false);
    expect(() => st.spoolFile('../x')).toThrow();
  });
});
