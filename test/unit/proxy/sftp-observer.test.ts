import type { Transform } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { fileAudit } from '../../../src/proxy/sftp/observer.js';
import { SSH_FXP } from '../../../src/proxy/sftp/wire.js';
import type { ChannelFilter, ChannelInfo } from '../../../src/shared/channel.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { tempStore } from '../../helpers/store.js';

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const str = (s: string) => Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s)]);
const pkt = (type: number, ...parts: Buffer[]) => { const body = Buffer.concat([Buffer.from([type]), ...parts]); return Buffer.concat([u32(body.length), body]); };

/**
 * Under sftp-read gatehouse answers refused requests itself and audits each: a client that sends
 * nothing but refused requests (and never reads the replies) must not grow the audit log and the
 * reply queue without end.
 */
describe('sftp-read observer: refusals are bounded', () => {
  it('past 1,000 refused requests the channel ends with transfer.malformed', async () => {
    const { store } = tempStore();
    const info: ChannelInfo = { sessionId: 's-1', channel: 0, user: 'rita', host: 'web1', login: 'deploy', kind: 'subsystem', command: 'sftp', action: 'sftp-read', pty: null };
    let filter: ChannelFilter | null = null;
    const aborted: string[] = [];
    const tracked: Promise<unknown>[] = [];
    fileAudit({ store, log: silentLogger() } as never, info, {
      abort: (m) => aborted.push(m), track: (p) => tracked.push(p), counter: {} as never, filter: (f) => { filter = f; },
    });
    const toTarget = (filter as ChannelFilter | null)!.toTarget as Transform;
    toTarget.resume();
    (filter as ChannelFilter | null)!.toOperator.resume();
    const write = (b: Buffer) => new Promise<void>((resolve) => toTarget.write(b, () => resolve()));
    await write(pkt(SSH_FXP.INIT, u32(3)));
    for (let id = 1; id <= 1_100 && aborted.length === 0; id++) await write(pkt(SSH_FXP.REMOVE, u32(id), str(`/etc/f${id}`)));
    expect(aborted).toEqual([expect.stringMatching(/more than 1000 refused requests/)]);
    await Promise.allSettled(tracked);
    expect(await store.audit.count('sftp.denied')).toBe(1_000);
    expect((await store.audit.list({ type: 'transfer.malformed' })).map((e) => e.data.error)).toEqual(['more than 1000 refused requests']);
    store.close();
  });
});
