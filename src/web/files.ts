import { filesWithContent, MarkerCache } from '../recorder/filecontent.js';
import type { RecordingStorage } from '../recorder/storage/types.js';
import { isoTime } from '../shared/clock.js';
import type { Store } from '../store/types.js';
import { html, type Html } from './html.js';

/**
 * The session page's file list: every file an SFTP or scp channel of the session moved, with its
 * direction, path, size, SHA-256 (or `partial`) and time. Paths are the operator's bytes: escaped
 * like every other value by html``.
 */
/** Markers of closed transfer recordings already read (with S3 each read is a download). */
const markers = new MarkerCache();

export async function filesSection(store: Store, sessionId: string, storage?: RecordingStorage, cache: MarkerCache = markers): Promise<Html> {
  const files = await store.files.list(sessionId);
  if (files.length === 0) return html``;
  // Stored contents (recording.fileContent): a download link, by the file's number in this list.
  const stored = storage ? await filesWithContent(storage, await store.recordings.list(sessionId), files, cache) : new Set<number>();
  return html`<h2>Files</h2><table class="files"><thead><tr><th>#</th><th>Direction</th><th>Path</th><th>Size</th><th>SHA-256</th><th>Protocol</th><th>Time</th><th>Content</th></tr></thead><tbody>
    ${files.map((f, i) => html`<tr><td>${f.channel}</td><td>${f.direction}</td><td><code>${f.path}</code></td><td>${f.size}</td><td><code>${f.sha256}</code></td><td>${f.protocol}</td><td>${isoTime(f.at)}</td>
      <td>${stored.has(i) ? html`<a class="file-content" href="/sessions/${sessionId}/file-${i + 1}">download</a>` : '-'}</td></tr>`)}
    </tbody></table>`;
}
