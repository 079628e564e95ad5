import { createRequire } from 'node:module';
import type pino from 'pino';
import type { Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

// pino and pino-pretty load when a logger is first made, not when this module is imported: many
// modules import it, and loading them costs every process start (each CLI run) noticeable time.
// Required synchronously so createLogger and silentLogger stay sync.
const requireHere = createRequire(import.meta.url);
const loadPino = (): typeof pino => requireHere('pino') as typeof pino;
const loadPretty = (): typeof PinoPretty => requireHere('pino-pretty') as typeof PinoPretty;

export type { Logger };

/**
 * Paths whose values are secrets. Redaction works on object paths only: never interpolate a secret
 * into a message string.
 */
export const REDACT_PATHS = [
  'password', '*.password', 'secret', '*.secret', 'totp', '*.totp', 'token', '*.token', 'code', '*.code',
  'privateKey', '*.privateKey', 'key.private', 'masterKey', '*.masterKey', 'cookie', '*.cookie',
  'req.headers.cookie', 'req.headers.authorization', 'res.headers["set-cookie"]',
];

/**
 * JSON lines for machines by default; readable lines (pino-pretty) when `format` is pretty, or auto
 * and stdout is a terminal. Redaction happens before either, in pino itself.
 */
export function createLogger(opts: { level?: string; destination?: pino.DestinationStream; format?: 'auto' | 'json' | 'pretty'; tty?: boolean } = {}): Logger {
  const readable = opts.format === 'pretty' || (opts.format === 'auto' && opts.tty === true);
  const pino = loadPino();
  return pino(
    {
      base: { svc: 'gatehouse' },
      level: opts.level ?? 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    },
    opts.destination ?? (readable
      // Synchronous, in this thread: the last lines before an exit are never lost.
      ? loadPretty()({ sync: true, colorize: opts.tty === true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,svc', destination: 1 })
      : pino.destination({ dest: 1, sync: true })),
  );
}

/** A logger that drops everything: the CLI's default, so its stdout stays the command's output. */
export function silentLogger(): Logger {
  return loadPino()({ level: 'silent' });
}
