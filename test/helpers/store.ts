import path from 'node:path';
import { ManualClock } from '../../src/shared/clock.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/types.js';
import { tempDir } from './cli.js';

export const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);

export function tempStore(): { store: Store; clock: ManualClock; file: string } {
  const file = path.join(tempDir(), 'gatehouse.db');
  const clock = new ManualClock(T0);
  return { store: createSqliteStore(file, clock), clock, file };
}

export const admin = { actor: 'test' };
