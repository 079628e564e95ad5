import { invalid } from './errors.js';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30s", "10m", "12h", "1h30m", "0s" → milliseconds; null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const s = text.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(s)) return null;
  let total = 0;
  for (const m of s.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return Number.isSafeInteger(total) ? total : null;
}

export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, B: 1, KB: 1000, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3,
};

/** "64MiB", "500MB", "1GiB", "4096" → bytes; null when the text is not a size. */
export function parseSize(text: string): number | null {
  const m = /^(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]) * SIZE_UNITS[m[2] ?? '']!;
  return Number.isSafeInteger(n) ? n : null;
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** "0.0.0.0:2222", "[::1]:2222", "localhost:8080" → {host, port}; null when malformed. */
export function parseListen(text: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

export function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** ISO-8601 date or date-time → epoch ms, with a clear error naming what was wrong. */
export function parseIsoTime(text: string, what: string): number {
  // Date.parse accepts many loose forms; require something that starts like ISO-8601.
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim())) {
    throw invalid(`${what}: "${text}" is not an ISO-8601 date`, 'use e.g. 2026-12-31 or 2026-12-31T18:00:00Z');
  }
  const ms = Date.parse(text.trim());
  if (Number.isNaN(ms)) throw invalid(`${what}: "${text}" is not a valid date`, 'use e.g. 2026-12-31T18:00:00Z');
  return ms;
}
