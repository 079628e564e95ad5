import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

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
      ? pretty({ sync: true, colorize: opts.tty === true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,svc', destination: 1 })
      : pino.destination({ dest: 1, sync: true })),
  );
}

/** A logger that drops everything: the CLI's default, so its stdout stays the command's output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
