import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import type { Clock } from '../shared/clock.js';
import { GatehouseError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Store } from '../store/types.js';
import { currentHeads, makeCheckpoint, parseCheckpoint, sameHeads, type Checkpoint, type Sign } from './checkpoint.js';

/**
 * The witness: signed checkpoints appended one JSON line at a time to a file outside the database
 * (config audit.witness, default DATA/witness.log), and mirrored to the log for a SIEM. Someone
 * who can rewrite the database can remove its newest rows and fix every hash and head inside it,
 * but cannot take back a line already in the witness (when it lives on another volume or has been
 * shipped off the machine), and `verify` fails when the database lacks what any line names.
 *
 * Checkpoints from several processes (the server, CLI admin commands) may land out of order: each
 * line stands on its own, so order does not matter.
 */

/** The latest checkpoint is also kept in the database, for the web UI's integrity view. */
export const CHECKPOINT_KEY = 'audit.checkpoint';

/**
 * For audit rows alone, checkpoints on the timer are at most this frequent; a closed recording,
 * start, stop and CLI changes always write one.
 */
export const CHECKPOINT_MIN_INTERVAL_MS = 1000;

export function witnessPath(config: Pick<Config, 'audit' | 'dataDir'>, dataDir: { paths: { witness: string } }): string {
  return config.audit.witness === undefined ? dataDir.paths.witness : path.resolve(config.dataDir, config.audit.witness);
}

export interface Witness {
  readonly file: string;
  /**
   * Sign both chains' heads and append them, unless nothing moved since this witness last wrote.
   * Without force, skipped when the last one is younger than CHECKPOINT_MIN_INTERVAL_MS. Throws
   * when the witness cannot be written.
   */
  checkpoint(opts?: { force?: boolean }): Promise<Checkpoint | null>;
}

export interface WitnessDeps {
  file: string;
  store: Store;
  sign: Sign;
  clock: Clock;
  /** Absent in the CLI: the server mirrors its own checkpoints, which cover the CLI's rows. */
  log?: Logger;
}

export function createWitness(deps: WitnessDeps): Witness {
  const { file, store, sign, clock } = deps;
  const siem = deps.log?.child({ stream: 'witness' });
  let last: Checkpoint | null = null;
  let lastAt = -Infinity;
  let queue: Promise<unknown> = Promise.resolve();

  const take = async (force: boolean): Promise<Checkpoint | null> => {
    const now = clock.now();
    const heads = await currentHeads(store);
    if (last && sameHeads(last, heads)) return null;
    // Audit rows are batched; a closed recording is witnessed at once (there are far fewer of them).
    const recordingClosed = heads.recordings.count !== (last?.recordings.count ?? -1);
    if (!force && !recordingClosed && now - lastAt < CHECKPOINT_MIN_INTERVAL_MS) return null;
    const c = makeCheckpoint(heads, now, sign);
    // Set before writing: a witness that cannot be written is retried (and logged) once a second, not every tick.
    lastAt = now;
    appendLine(file, JSON.stringify(c));
    last = c;
    siem?.info({ checkpoint: c }, 'checkpoint');
    await store.meta.set(CHECKPOINT_KEY, JSON.stringify(c));
    return c;
  };
  return {
    file,
    checkpoint(opts = {}) {
      // One at a time, so two lines are never built from the same "last".
      const next = queue.then(() => take(opts.force === true));
      queue = next.catch(() => undefined);
      return next;
    },
  };
}

/** One write(2) on an O_APPEND descriptor: lines from the server and the CLI never interleave. */
function appendLine(file: string, line: string): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.appendFileSync(file, line + '\n', { mode: 0o600, flag: 'a' });
  } catch (err) {
    throw new GatehouseError('GH_RUNTIME', `cannot write the witness ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      hint: 'check audit.witness in the config and that its directory is writable by this user', cause: err,
    });
  }
}

/**
 * For a process that makes changes and exits (the CLI): returns what to call before closing the
 * store; it writes a checkpoint when this process moved either chain. A read-only command writes
 * nothing.
 */
export async function witnessChanges(deps: Omit<WitnessDeps, 'log'>): Promise<() => Promise<void>> {
  const before = await currentHeads(deps.store);
  return async () => {
    if (sameHeads(before, await currentHeads(deps.store))) return;
    await createWitness(deps).checkpoint({ force: true });
  };
}

export interface WitnessLine {
  line: number;
  checkpoint: Checkpoint | null;
}

/** Every non-empty line; a missing file reads as none (verify decides whether that is allowed). */
export function readWitness(file: string): { exists: boolean; lines: WitnessLine[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false, lines: [] };
    throw new GatehouseError('GH_RUNTIME', `cannot read the witness ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      hint: 'check audit.witness in the config (pass the same --config to verify as to serve)', cause: err,
    });
  }
  const lines: WitnessLine[] = [];
  text.split('\n').forEach((t, i) => {
    if (t.trim() !== '') lines.push({ line: i + 1, checkpoint: parseCheckpoint(t) });
  });
  return { exists: true, lines };
}
