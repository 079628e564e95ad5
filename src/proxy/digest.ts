import type { StreamDigests } from '../store/types.js';
import { Sink, type Offload } from '../shared/offload.js';
import type { ChannelObserver } from './relay.js';

/**
 * Byte counts and SHA-256 of the complete raw stdin, stdout and stderr of a channel, whatever the
 * recording keeps: an auditor can match a transferred file against the channel row. The hashing
 * runs on the worker thread (shared/offload.ts); the relay only copies each chunk into a batch.
 */
export class StreamDigest implements ChannelObserver {
  private readonly s: { stdin: Sink; stdout: Sink; stderr: Sink };
  readonly bytes = { stdin: 0, stdout: 0, stderr: 0 };

  constructor(offload: Offload) {
    this.s = { stdin: new Sink(offload, null), stdout: new Sink(offload, null), stderr: new Sink(offload, null) };
  }

  onInput(d: Buffer): void {
    this.bytes.stdin += d.length;
    this.s.stdin.write(d);
  }

  onOutput(d: Buffer, stream: 'stdout' | 'stderr'): void {
    this.bytes[stream] += d.length;
    this.s[stream].write(d);
  }

  /** Ends the digests: call once the channel has finished. */
  async digests(): Promise<StreamDigests> {
    const [i, o, e] = await Promise.all([this.s.stdin.close(), this.s.stdout.close(), this.s.stderr.close()]);
    for (const r of [i, o, e]) if (r.error) throw r.error;
    return {
      stdinBytes: this.bytes.stdin, stdoutBytes: this.bytes.stdout, stderrBytes: this.bytes.stderr,
      stdinSha256: i.sha256, stdoutSha256: o.sha256, stderrSha256: e.sha256,
    };
  }
}
