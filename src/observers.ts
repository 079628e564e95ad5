import type { Logger } from './shared/logger.js';
import type { ChannelControl, ChannelInfo, ChannelObserver, ExitInfo, ObserverFactory, RecordingObserver } from './shared/channel.js';
import type { Store } from './store/types.js';
import { StreamDigest } from './proxy/digest.js';
import type { Offload } from './shared/offload.js';
import { fileAudit } from './proxy/sftp/observer.js';
import type { RecordingStorage } from './recorder/storage/types.js';

/**
 * Everything that watches a relayed channel, assembled here and nowhere else:
 *   counters  bytes and activity for the session row and the idle timeout (the connection's own)
 *   digest    byte counts and SHA-256 of the raw streams, written to the channel row at the end
 *   recorder  the .cast file (fails closed) and, through it, the live view
 *   files     transfers file by file (proxy/sftp): audit events and the files table; under
 *             `sftp-read` it stands in the byte path and refuses writes
 * An observer sees a neutral ChannelInfo and the ChannelControl, never the connection.
 */
export interface ObserverDeps {
  store: Store;
  log: Logger;
  /** The recorder (and live view); may reject, which refuses the channel. */
  recorder: ObserverFactory;
  /** The worker thread that hashes the streams. */
  offload: Offload;
  /**
   * false only under `serve --bench-no-recording` (the bench measures what the file audit costs).
   * `sftp-read` channels keep it whatever this says: there it is what refuses writes.
   */
  fileAudit?: boolean;
  /** recording.fileContent: contents of transferred files up to maxBytes stored in the recordings storage (0: off). */
  fileContent?: { maxBytes: number; storage: RecordingStorage } | null;
}

export function channelObservers(deps: ObserverDeps): ObserverFactory {
  return async (info, ctl) => {
    const recorded = await deps.recorder(info, ctl);
    // The recorder's marker line: the file audit binds stored file contents into the recording with it.
    const rec = (recorded as RecordingObserver[]).find((o) => o.mark);
    const mark = rec?.mark ? (text: string) => rec.mark!(text) : null;
    const fileContent = deps.fileContent && deps.fileContent.maxBytes > 0 ? { ...deps.fileContent, offload: deps.offload, log: deps.log } : null;
    const files = deps.fileAudit !== false || info.action === 'sftp-read' ? fileAudit({ store: deps.store, log: deps.log, fileContent, mark }, info, ctl) : [];
    // The file audit ends before the recorder: files still open at the end are marked before the recording closes.
    return [ctl.counter, channelRow(deps, info, ctl), ...files, ...recorded];
  };
}

/** The digest observer: on the channel's end its counts and hashes close the channel row. */
function channelRow(deps: ObserverDeps, info: ChannelInfo, ctl: ChannelControl): ChannelObserver {
  const digest = new StreamDigest(deps.offload);
  return {
    onInput: (d) => digest.onInput(d),
    onOutput: (d, s) => digest.onOutput(d, s),
    onEnd: (exit: ExitInfo) => {
      ctl.track((async () => {
        const digests = await digest.digests().catch((err: unknown) => {
          // Only if the hashing thread died: keep the counts, say so in the log.
          deps.log.error({ err, session: info.sessionId, channel: info.channel }, 'stream hashes unavailable');
          const b = digest.bytes;
          return { stdinBytes: b.stdin, stdoutBytes: b.stdout, stderrBytes: b.stderr, stdinSha256: '', stdoutSha256: '', stderrSha256: '' };
        });
        await deps.store.sessions.closeChannel({ sessionId: info.sessionId, channel: info.channel, exitStatus: exit.code, exitSignal: exit.signal, ...digests });
      })().catch((err: unknown) => deps.log.error({ err, session: info.sessionId }, 'closing the channel row failed')));
    },
  };
}
