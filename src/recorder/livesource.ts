import fs from 'node:fs';
import type { Store } from '../store/types.js';
import { LivenessChecks } from './livecheck.js';
import { CHECK_MS, followSpool, type FollowOptions } from './livefollow.js';
import type { LiveHub } from './livehub.js';
import type { RecordingStorage } from './storage/types.js';

/**
 * Where a live channel can be watched from this process:
 * - `process`: this process records it (the LiveHub);
 * - `spool`: another process on this machine, or another node on the same data directory, records
 *   it: its spool file is here and is followed (livefollow.ts);
 * - `node`: it is recorded on another node whose spool this machine cannot see (one data directory
 *   per node): the viewer is told which node holds it.
 * null: the channel is not live (or has no recording).
 */
export type LiveWhere = { at: 'process' } | { at: 'spool' } | { at: 'node'; node: string };

export type LiveSubscription = { at: 'process' | 'spool'; stop: () => void } | { at: 'node'; node: string } | null;

export class LiveSource {
  /** One store check a second per followed channel, however many view it. */
  private readonly checks: LivenessChecks;

  constructor(
    private readonly hub: LiveHub,
    private readonly store: Store,
    private readonly storage: RecordingStorage,
    private readonly follow: Partial<Omit<FollowOptions, 'isLive'>> = {},
  ) {
    this.checks = new LivenessChecks((id, channel) => this.stillLive(id, channel), follow.checkMs ?? CHECK_MS);
  }

  async where(sessionId: string, channel: number): Promise<LiveWhere | null> {
    if (this.hub.isLive(sessionId, channel)) return { at: 'process' };
    const found = await this.openRecording(sessionId, channel);
    if (!found) return null;
    return found.file !== null ? { at: 'spool' } : { at: 'node', node: found.node };
  }

  /** Header and backlog now, then each new line; null when the channel ends. */
  async subscribe(sessionId: string, channel: number, send: (line: string | null) => void): Promise<LiveSubscription> {
    const own = this.hub.subscribe(sessionId, channel, send);
    if (own) return { at: 'process', stop: own };
    const found = await this.openRecording(sessionId, channel);
    if (!found) return null;
    if (found.file === null) return { at: 'node', node: found.node };
    const live = this.checks.acquire(sessionId, channel);
    let f: ReturnType<typeof followSpool>;
    try {
      f = followSpool(found.file, (line) => {
        if (line === null) live.release();
        send(line);
      }, { ...this.follow, isLive: live.isLive });
    } catch (err) {
      live.release();
      throw err;
    }
    if (!f) { live.release(); return null; }
    const follower = f;
    return { at: 'spool', stop: () => { follower.stop(); live.release(); } };
  }

  /** Whether the store still has the channel's recording open in a live session. */
  private async stillLive(sessionId: string, channel: number): Promise<boolean> {
    const [s, recs] = await Promise.all([this.store.sessions.get(sessionId), this.store.recordings.list(sessionId)]);
    return !!s && s.endedAt === null && recs.some((r) => r.channel === channel && r.state === 'open');
  }

  /**
   * The open recording of a live session's channel: its spool file when this machine has it, else
   * null and the node named on the session row.
   */
  private async openRecording(sessionId: string, channel: number): Promise<{ file: string | null; node: string } | null> {
    const [s, recs] = await Promise.all([this.store.sessions.get(sessionId), this.store.recordings.list(sessionId)]);
    const rec = recs.find((r) => r.channel === channel && r.state === 'open');
    if (!s || s.endedAt !== null || !rec) return null;
    let file: string | null;
    try {
      file = this.storage.spoolFile(rec.path);
    } catch {
      return null; // a row naming a path outside the spool is never followed
    }
    try {
      if (!fs.statSync(file).isFile()) file = null;
    } catch {
      file = null;
    }
    return { file, node: s.node ?? 'another node' };
  }
}
