import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../shared/logger.js';

/**
 * Free space where recordings are written. recording.minFreeSpace is the floor under which new
 * sessions are refused (recorder.ts); the log warns at twice the floor, while there is still time
 * to act, and again each time it is crossed after having recovered. /metrics exports both numbers.
 */
export function freeBytes(dir: string): number | null {
  // The recordings directory appears with the first recording: until then, the volume it will be on.
  for (let d = path.resolve(dir), i = 0; i < 64; d = path.dirname(d), i++) {
    try {
      const st = fs.statfsSync(d);
      return Number(st.bavail) * Number(st.bsize);
    } catch {
      if (d === path.dirname(d)) return null;
    }
  }
  return null;
}

export type DiskLevel = 'ok' | 'low' | 'floor';

export function diskLevel(free: number, floor: number): DiskLevel {
  if (free < floor) return 'floor';
  return free < 2 * floor ? 'low' : 'ok';
}

export interface DiskWatch {
  /** The last measured free bytes (measured now when never measured), null when unreadable. */
  free(): number | null;
  check(): DiskLevel | null;
  stop(): void;
}

export function startDiskWatch(o: { dir: string; floor: number; log: Logger; everyMs?: number; measure?: (dir: string) => number | null }): DiskWatch {
  const measure = o.measure ?? freeBytes;
  let last: number | null = null;
  let level: DiskLevel = 'ok';
  const check = (): DiskLevel | null => {
    last = measure(o.dir);
    if (last === null) return null;
    const now = diskLevel(last, o.floor);
    if (now !== level) {
      const fields = { dir: o.dir, freeBytes: last, minFreeSpace: o.floor };
      if (now === 'floor') o.log.error(fields, 'free space for recordings is under recording.minFreeSpace: new sessions are refused');
      else if (now === 'low') o.log.warn(fields, 'free space for recordings is under twice recording.minFreeSpace: new sessions will be refused at the floor');
      else o.log.info(fields, 'free space for recordings is back above twice recording.minFreeSpace');
      level = now;
    }
    return now;
  };
  check();
  const timer = setInterval(check, o.everyMs ?? 60_000);
  timer.unref();
  return { free: () => last ?? measure(o.dir), check, stop: () => clearInterval(timer) };
}
