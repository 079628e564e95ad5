import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Offload, Sink } from '../../../src/shared/offload.js';
import { tempDir } from '../../helpers/cli.js';

/** Chunks of every size class: tiny, packet-sized, and larger than one batch (1 MiB). */
function chunks(): Buffer[] {
  const sizes = [1, 7, 32768, 5, 3 * 1024 * 1024 + 3, 0, 65536, 1024 * 1024, 100];
  return sizes.map((n) => randomBytes(n));
}

describe('offload sinks (hashing and recording writes on the worker thread)', () => {
  const offload = new Offload();
  afterAll(() => offload.stop());

  it('hash exactly what was written, whatever the chunk sizes, with several sinks interleaved', async () => {
    const a = chunks();
    const b = chunks().reverse();
    const sa = new Sink(offload, null);
    const sb = new Sink(offload, null);
    for (let i = 0; i < a.length; i++) { sa.write(a[i]!); sb.write(b[i]!); }
    const [ra, rb] = await Promise.all([sa.close(), sb.close()]);
    expect(ra).toEqual({ size: Buffer.concat(a).length, sha256: createHash('sha256').update(Buffer.concat(a)).digest('hex'), error: null });
    expect(rb.sha256).toBe(createHash('sha256').update(Buffer.concat(b)).digest('hex'));
  });

  it('the caller may reuse its buffer right after write(): the sink copied it', async () => {
    const s = new Sink(offload, null);
    const buf = Buffer.from('first');
    s.write(buf);
    buf.write('XXXXX');
    expect((await s.close()).sha256).toBe(createHash('sha256').update('first').digest('hex'));
  });

  it('writes a file in order, flushes on demand and fsyncs at close', async () => {
    const file = path.join(tempDir(), 'out.bin');
    const fd = fs.openSync(file, 'wx', 0o600);
    const s = new Sink(offload, fd);
    const data = chunks();
    s.write(data[0]!);
    s.write(data[1]!);
    s.flush();
    for (const d of data.slice(2)) s.write(d);
    const r = await s.close(true);
    fs.closeSync(fd);
    const all = Buffer.concat(data);
    expect(r.error).toBeNull();
    expect(fs.readFileSync(file).equals(all)).toBe(true);
    expect(r).toMatchObject({ size: all.length, sha256: createHash('sha256').update(all).digest('hex') });
  });

  it('a failing write is reported once through onError and by close(); nothing is counted for it', async () => {
    const file = path.join(tempDir(), 'ro.bin');
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r');
    const errors: Error[] = [];
    const s = new Sink(offload, fd, (err) => errors.push(err));
    s.write(Buffer.from('x'.repeat(100)));
    s.flush();
    s.write(Buffer.from('y'));
    const r = await s.close();
    fs.closeSync(fd);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/EBADF/);
    expect(r.error?.message).toMatch(/EBADF/);
    expect(r.size).toBe(0);
  });

  it('if the worker dies, open sinks fail (a recording then fails closed) and the next sink gets a new worker', async () => {
    const own = new Offload();
    const errors: Error[] = [];
    const s = new Sink(own, null, (err) => errors.push(err));
    s.write(Buffer.from('before the crash'));
    s.flush();
    await own.crashForTests();
    expect(errors.map((e) => e.message)).toEqual(['the hashing thread stopped']);
    expect((await s.close()).error?.message).toBe('the hashing thread stopped');
    const next = new Sink(own, null);
    next.write(Buffer.from('after'));
    expect((await next.close()).sha256).toBe(createHash('sha256').update('after').digest('hex'));
    await own.stop();
  });

  it('start() waits for the worker to load; stop() fails open sinks and refuses new ones until the next start()', async () => {
    const own = new Offload();
    await own.start();
    const errors: Error[] = [];
    const open = new Sink(own, null, (err) => errors.push(err));
    open.write(Buffer.from('cut short'));
    await own.stop();
    expect(errors.map((e) => e.message)).toEqual(['the hashing thread stopped']);
    expect((await open.close()).error?.message).toBe('the hashing thread stopped');
    expect(() => new Sink(own, null)).toThrow('the hashing thread stopped');
    await own.start();
    const again = new Sink(own, null);
    again.write(Buffer.from('restarted'));
    expect((await again.close()).sha256).toBe(createHash('sha256').update('restarted').digest('hex'));
    await own.stop();
  });

  it('two apps do not share a worker: stopping one leaves the other\'s sinks running', async () => {
    const a = new Offload();
    const b = new Offload();
    const sb = new Sink(b, null);
    sb.write(Buffer.from('b keeps going'));
    sb.flush();
    new Sink(a, null).write(Buffer.from('a'));
    await a.stop();
    expect((await sb.close())).toEqual({ size: 13, sha256: createHash('sha256').update('b keeps going').digest('hex'), error: null });
    await b.stop();
  });
});
