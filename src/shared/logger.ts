import pino, { type Logger } from 'pino';

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

export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      base: { svc: 'gatehouse' },
      level: opts.level ?? 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** A logger that drops everything: the CLI's default, so its stdout stays the command's output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
