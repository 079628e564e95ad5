import { createHash } from 'node:crypto';
import path from 'node:path';
import { isoTime } from '../shared/clock.js';
import type { FileRecord, SessionRecord, Store } from '../store/types.js';
import { contentMarkers } from './filecontent.js';
import { asStorage } from './storage/local.js';
import type { RecordingStorage } from './storage/types.js';
import { hostKeyVerifier, verifyRecordings } from './verify.js';

/**
 * What an auditor takes away (`gatehouse sessions export` and the web UI's export bundle alike):
 * the session, its channels, and each recording with its hash, chain position, signature and the
 * integrity verdict at export time, plus the recordings that exist (read through the storage:
 * `files[].read()`), named as in the bundle. Captured file contents (recording.fileContent) come
 * along when their transfer recording is intact, each checked against its marker: an auditor's
 * bundle holds the very bytes the session moved, or says why it does not (`contents[].verdict`).
 */
export function sessionJson(s: SessionRecord) {
  return {
    id: s.id, user: s.user, source: s.sourceAddr, host: s.host, login: s.login, mode: s.mode, grant: s.grantId,
    keyFingerprint: s.keyFingerprint, startedAt: isoTime(s.startedAt), endedAt: s.endedAt === null ? null : isoTime(s.endedAt),
    endReason: s.endReason, bytesUp: s.bytesUp, bytesDown: s.bytesDown, live: s.endedAt === null,
  };
}

/** A transferred file as `sessions show`, the export manifest and the web page give it. */
export function fileJson(f: FileRecord) {
  return { channel: f.channel, protocol: f.protocol, direction: f.direction, path: f.path, size: f.size, sha256: f.sha256, at: isoTime(f.at) };
}

/**
 * The captured file content one export carries at most (the web tar is built in memory): contents
 * past it are listed with `file: null` and a note, their verdict still given.
 */
export const EXPORT_CONTENT_BYTES = 256 * 1024 * 1024;

export async function exportManifest(
  store: Store, dirs: { recordings: RecordingStorage | string; hostKey: Buffer; retention: number | null }, s: SessionRecord, exportedBy: string, now: number,
  contentLimit = EXPORT_CONTENT_BYTES,
): Promise<{ manifest: Record<string, unknown>; files: { name: string; read(): Promise<Buffer> }[] }> {
  const storage = asStorage(dirs.recordings);
  const [report, recs, channels] = await Promise.all([
    verifyRecordings(store, storage, hostKeyVerifier(dirs.hostKey), s.id, { retention: dirs.retention }), store.recordings.list(s.id), store.sessions.channels(s.id),
  ]);
  const manifest = {
    exportedAt: isoTime(now), exportedBy, session: sessionJson(s),
    channels: channels.map((c) => ({ ...c, startedAt: isoTime(c.startedAt), endedAt: c.endedAt === null ? null : isoTime(c.endedAt) })),
    recordings: recs.map((r) => ({
      channel: r.channel, file: path.basename(r.path), kind: r.kind, state: r.state, size: r.size, sha256: r.sha256, truncatedAtLimit: r.truncated,
      chainSeq: r.seq, chainHash: r.chainHash, signature: r.signature,
      verdict: report.items.find((i) => i.channel === r.channel)?.verdict ?? 'missing',
    })),
    chainOk: report.chain.ok,
    files: (await store.files.list(s.id)).map(fileJson),
    contents: [] as { channel: number; direction: string; path: string; size: number; sha256: string; file: string | null; verdict: 'intact' | 'modified' | 'missing'; note?: string }[],
  };
  const files: { name: string; read(): Promise<Buffer> }[] = [];
  let contentBytes = 0;
  for (const r of recs) {
    // Markers are trusted only in a transfer recording that verified intact (they are chained with it).
    const verdict = report.items.find((i) => i.channel === r.channel)?.verdict;
    if (r.kind !== 'transfer' || verdict !== 'intact') continue;
    const cast = await storage.read(r.path);
    if (!cast) continue;
    for (const m of contentMarkers(cast, r.path)) {
      const d = await storage.digest(m.file).catch(() => null);
      const state = d === null ? 'missing' : d.size === m.size && d.sha256 === m.sha256 ? 'intact' : 'modified';
      // Flat names in the bundle: SESSION-CHANNEL.cast.file-N beside the recording.
      const fits = contentBytes + m.size <= contentLimit;
      const name = state === 'intact' && fits ? `${path.basename(r.path)}.file-${m.file.slice(m.file.lastIndexOf('/') + 1)}` : null;
      manifest.contents.push({
        channel: r.channel, direction: m.direction, path: m.path, size: m.size, sha256: m.sha256, file: name, verdict: state,
        ...(state === 'intact' && !fits ? { note: 'not included: export limit' } : {}),
      });
      if (name === null) continue;
      contentBytes += m.size;
      files.push({
        name,
        async read() {
          const data = await storage.read(m.file);
          if (data === null || data.length !== m.size || createHash('sha256').update(data).digest('hex') !== m.sha256) throw new Error(`file content ${name} changed during the export`);
          return data;
        },
      });
    }
  }
  for (const r of recs) {
    if ((await storage.stat(r.path)) === null) continue;
    files.push({
      name: path.basename(r.path),
      async read() {
        const data = await storage.read(r.path);
        if (data === null) throw new Error(`recording ${r.path} vanished during the export`);
        return data;
      },
    });
  }
  return { manifest, files };
}
