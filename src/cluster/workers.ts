import cluster from 'node:cluster';
import os from 'node:os';
import type { Config } from '../config/schema.js';
import { usageError } from '../shared/errors.js';

/**
 * `serve --workers N`: how many worker processes, and what a worker is told by its primary. The
 * primary (cluster/primary.ts) holds the listening sockets; each worker is a node of its own
 * (NAME/wK) on the shared store, so revocation, kills and the live list reach it the way they reach
 * another machine.
 */
export function workerCount(flag: string | undefined, config: Config, env: NodeJS.ProcessEnv = process.env): number {
  const raw = flag ?? (env.GATEHOUSE_WORKERS || undefined);
  const v = raw === undefined ? config.node.workers : raw === 'auto' ? 'auto' : Number(raw);
  if (v === 'auto') return Math.max(1, os.availableParallelism());
  if (!Number.isInteger(v) || v < 1 || v > 256) throw usageError(`--workers expects a number from 1 to 256 or "auto", got "${raw}"`);
  return v;
}

/** What a worker learns from its environment (set by the primary at fork). */
export interface WorkerRole {
  name: string;
  /** This worker mirrors the audit log, sweeps retention, sends webhooks and reaps dead nodes. */
  housekeeping: boolean;
}

export const WORKER_NAME_ENV = 'GATEHOUSE_WORKER_NAME';
export const WORKER_HOUSEKEEPING_ENV = 'GATEHOUSE_WORKER_HOUSEKEEPING';

export function workerRole(env: NodeJS.ProcessEnv = process.env): WorkerRole | null {
  if (!cluster.isWorker) return null;
  const name = env[WORKER_NAME_ENV];
  if (!name) return null;
  return { name, housekeeping: env[WORKER_HOUSEKEEPING_ENV] === '1' };
}

/** Primary → worker. */
export type ToWorker = { gh: 'stop' } | { gh: 'hurry' } | { gh: 'retire' };
/** Worker → primary. */
export type ToPrimary = { gh: 'ready'; ssh: string; web: string } | { gh: 'retired'; sessions: number };

export function isToWorker(m: unknown): m is ToWorker {
  return typeof m === 'object' && m !== null && ['stop', 'hurry', 'retire'].includes((m as { gh?: string }).gh ?? '');
}

export function isToPrimary(m: unknown): m is ToPrimary {
  return typeof m === 'object' && m !== null && ['ready', 'retired'].includes((m as { gh?: string }).gh ?? '');
}

/** Tell the primary something (no-op outside a worker). */
export function tellPrimary(m: ToPrimary): void {
  if (cluster.isWorker && process.send) process.send(m);
}
