import type { ParseArgsConfig } from 'node:util';
import type { Config } from '../config/schema.js';
import type { DataDir } from '../datadir/datadir.js';
import type { Clock } from '../shared/clock.js';
import type { Store } from '../store/types.js';
import { oneLine } from './escape.js';

/** What a command returns: text for people, json for `--json`; the dispatcher prints one of them. */
export interface CommandOutput {
  text?: string;
  json?: unknown;
  /** Non-zero without an error, e.g. `access check` answering "deny". */
  exitCode?: number;
}

export interface Opened {
  config: Config;
  dataDir: DataDir;
  store: Store;
}

export interface CommandContext {
  /** Opens the data directory and the store on first call (so --help touches nothing). */
  open(): Promise<Opened>;
  /** Loads the config without opening anything (serve opens its own). */
  config(): Config;
  clock: Clock;
  actor: string;
  json: boolean;
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Every command module exports commands of this one shape. */
export interface Command {
  /** The words that select it: ["user", "key", "add"]. */
  names: string[];
  /** "NAME [FILE|-]": what follows the names in the usage line. */
  args: string;
  summary: string;
  /** Extra help text (options, examples). */
  help?: string;
  options?: Options;
  positionals: { min: number; max: number };
  /** Listing commands accept --json. */
  json?: boolean;
  handler(ctx: CommandContext, values: Values, positionals: string[]): Promise<CommandOutput>;
}

export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function strs(values: Values, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
}

/** Fixed-width columns for listings; a cell never breaks its row or controls the terminal. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows.map((r) => r.map(oneLine))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
