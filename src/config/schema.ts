import { z } from 'zod';
import { parseDuration, parseListen, parseSize, type ListenAddress } from '../shared/units.js';

/**
 * The one place where config keys, their defaults and their checks live. Strict everywhere: an
 * unknown key is an error that names it, so a typo never silently falls back to a default.
 */
const duration = (def: string) =>
  z
    .string()
    .default(def)
    .transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: `expected a duration like 30s, 10m or 12h, got "${s}"` });
        return z.NEVER;
      }
      return ms;
    });

const size = (def: string) =>
  z
    .union([z.string(), z.number().int().nonnegative()])
    .default(def)
    .transform((v, ctx) => {
      const n = typeof v === 'number' ? v : parseSize(v);
      if (n === null) {
        ctx.addIssue({ code: 'custom', message: `expected a size like 64MiB or 500MB, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const listen = (def: string) =>
  z
    .string()
    .default(def)
    .transform((s, ctx): ListenAddress => {
      const a = parseListen(s);
      if (a === null) {
        ctx.addIssue({ code: 'custom', message: `expected HOST:PORT (e.g. 0.0.0.0:2222 or [::1]:2222), got "${s}"` });
        return z.NEVER;
      }
      return a;
    });

const positiveInt = (def: number) => z.number().int().positive().default(def);

export const configSchema = z.strictObject({
  dataDir: z.string().min(1).default('./data'),
  ssh: z
    .strictObject({
      listen: listen('0.0.0.0:2222'),
      loginGraceTime: duration('30s'),
      /** Unauthenticated connections held at once, from all addresses (OpenSSH MaxStartups). */
      maxStartups: positiveInt(100),
      /** Unauthenticated connections held at once from one address (OpenSSH PerSourceMaxStartups). */
      perSourceMaxStartups: positiveInt(10),
    })
    .prefault({}),
  web: z
    .strictObject({
      listen: listen('127.0.0.1:8080'),
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
      // The UI's public origin when a reverse proxy serves it (live view refuses other Origins).
      origin: z.string().regex(/^https?:\/\/[^/\s]+$/, 'expected an origin like https://audit.example.com (scheme and host, no path)').optional(),
    })
    .prefault({}),
  auth: z
    .strictObject({
      mfaGrace: duration('0s'),
      maxPendingMfa: positiveInt(3),
      lockout: z
        .strictObject({
          failures: positiveInt(5),
          window: duration('10m'),
          duration: duration('15m'),
        })
        .prefault({}),
    })
    .prefault({}),
  recording: z
    .strictObject({
      input: z.boolean().default(false),
      required: z.boolean().default(true),
      execOutputLimit: size('64MiB'),
      minFreeSpace: size('100MiB'),
    })
    .prefault({}),
  sessions: z
    .strictObject({
      idleTimeout: duration('30m'),
      maxDuration: duration('12h'),
      maxPerUser: positiveInt(10),
    })
    .prefault({}),
  audit: z
    .strictObject({
      // Where signed checkpoints of the audit and recordings chains are appended; absolute, or
      // relative to dataDir. Default: DATA/witness.log. Best on another volume or shipped off the machine.
      witness: z.string().min(1).optional(),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = Readonly<z.output<typeof configSchema>>;
