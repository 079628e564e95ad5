import { createHash, type Hash } from 'node:crypto';
import type { StreamDigests } from '../store/types.js';
import type { ChannelObserver } from './relay.js';

/**
 * Byte counts and SHA-256 of the complete raw stdin, stdout and stderr of a channel, whatever the
 * recording keeps: an auditor can match a transferred file against the channel row.
 */
export class StreamDigest implements ChannelObserver {
  private readonly h: Record<'stdin' | 'stdout' | 'stderr', Hash> = {
    stdin: createHash('sha256'), stdout: createHash('sha256'), stderr: createHash('sha256'),
  };
  readonly bytes = { stdin: 0, stdout: 0, stderr: 0 };

  onInput(d: Buffer): void {
    this.bytes.stdin += d.length;
    this.h.stdin.update(d);
  }

  onOutput(d: Buffer, stream: 'stdout' | 'stderr'): void {
    this.bytes[stream] += d.length;
    this.h[stream].update(d);
  }

  digests(): StreamDigests {
    return {
      stdinBytes: this.bytes.stdin, stdoutBytes: this.bytes.stdout, stderrBytes: this.bytes.stderr,
      stdinSha256: this.h.stdin.copy().digest('hex'), stdoutSha256: this.h.stdout.copy().digest('hex'), stderrSha256: this.h.stderr.copy().digest('hex'),
    };
  }
}
