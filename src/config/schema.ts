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

function isPostgresUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== '' && u.pathname.length > 1;
  } catch {
    return false;
  }
}

export const configSchema = z.strictObject({
  dataDir: z.string().min(1).default('./data'),
  /**
   * Where state lives: `sqlite` (the file in the data directory) or a PostgreSQL URL
   * (postgres://USER[:PASSWORD]@HOST:PORT/DB) shared by several nodes. Env GATEHOUSE_STORE.
   * The message never repeats the value: a URL may hold a password.
   */
  store: z.string().default('sqlite').refine((s) => s === 'sqlite' || isPostgresUrl(s),
    'expected "sqlite" or a URL like postgres://USER@HOST:5432/DB'),
  /** On SIGTERM: how long live sessions may run on (told the bastion is going down) before they are closed. */
  shutdownGrace: duration('30s'),
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
      // The environment variable holding a bearer token for /metrics. Set, /metrics asks for it and
      // adds the per-host fleet gauges (host names and their exposure are not for anyone who can
      // reach the port); unset, /metrics stays open with totals only.
      metricsTokenEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected the name of an environment variable').optional(),
    })
    .prefault({}),
  auth: z
    .strictObject({
      mfaGrace: duration('0s'),
      maxPendingMfa: positiveInt(3),
      // A verified touch of a security key (sk- key): the second factor itself (no TOTP prompt), or
      // only the first, with TOTP still asked.
      securityKeys: z.enum(['second-factor', 'first-factor']).default('second-factor'),
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
      /** Recordings are deleted this long after their session ended ("180d"); "forever" (default) keeps them. */
      retention: z.string().default('forever').transform((v, ctx) => {
        if (v === 'forever') return null;
        const ms = parseDuration(v);
        if (ms === null || ms === 0) {
          ctx.addIssue({ code: 'custom', message: `expected a duration like 180d or "forever", got "${v}"` });
          return z.NEVER;
        }
        return ms;
      }),
      /** How soon a live session's output becomes searchable (indexed in steps while it records). */
      liveIndexEvery: duration('2s'),
      /** Content capture of transferred files up to maxBytes each, stored beside the recording (0: off). */
      fileContent: z.strictObject({ maxBytes: size('0') }).prefault({}),
      // Where closed recordings are kept (src/recorder/storage/): the data directory (default), or an
      // S3-compatible bucket with recordings/ as the spool. Credentials come only from the AWS
      // environment variables / default credential chain: strict objects refuse them here.
      storage: z
        .strictObject({
          s3: z
            .strictObject({
              endpoint: z.string().url().optional(),
              bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name'),
              region: z.string().min(1).default('us-east-1'),
              prefix: z.string().regex(/^(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\/?)*$/, 'expected a key prefix like gatehouse/ (no leading slash, no ..)').default(''),
              forcePathStyle: z.boolean().default(false),
            })
            .optional(),
        })
        .optional(),
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
  targets: z
    .strictObject({
      // Lifetime of the certificate for a host with `--auth cert` (never past the grant's end). It
      // only has to be valid at login: a session outlives its certificate.
      certificateTtl: duration('5m').refine((ms) => ms >= 10_000 && ms <= 86_400_000, 'expected a duration from 10s to 24h'),
      // The bastion's egress addresses (IP or CIDR), written into each certificate as source-address.
      sourceAddresses: z.array(z.string().regex(/^[0-9a-fA-F:.]+(?:\/\d{1,3})?$/, 'expected an IP address or CIDR like 10.0.0.5 or 10.0.0.0/24')).default([]),
    })
    .prefault({}),
  // Just-in-time access requests (auth/requests.ts, `ssh … request LOGIN@HOST`).
  requests: z
    .strictObject({
      /** Distinct approvers a request needs before its grant is made. */
      approvals: positiveInt(1),
      /** Requests one user may have pending at once. */
      maxOpen: positiveInt(3),
      /** How long `request … --wait` waits for a decision. */
      waitMax: duration('15m'),
      /** The access a request asks for when it gives no --for. */
      defaultDuration: duration('1h'),
      /** The longest access a request may ask for. */
      maxDuration: duration('12h'),
      /** A request nobody decided within this is expired. */
      pendingTtl: duration('1h'),
      /** POSTed for each new request and decision, signed (HMAC-SHA256) with the secret in env var secretEnv. */
      webhook: z
        .strictObject({
          url: z.string().regex(/^https?:\/\/\S+$/, 'expected an http(s) URL'),
          secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected the name of an environment variable'),
          format: z.enum(['json', 'slack']).default('json'),
        })
        .optional(),
    })
    .prefault({}),
  // Fleet scans (src/fleet): patch and health status of every enabled host, read by a probe.
  fleet: z
    .strictObject({
      /** How often the server scans every enabled host ("6h"); "off" (default): only `gatehouse fleet scan`. */
      scanEvery: z.union([z.string(), z.literal(false)]).default('off').transform((v, ctx) => {
        // `off` unquoted is false to a YAML 1.1 reader: either way it means off.
        if (v === 'off' || v === false) return null;
        const ms = parseDuration(v);
        if (ms === null || ms < 60_000) {
          ctx.addIssue({ code: 'custom', message: `expected a duration of at least 1m like 6h, or "off", got "${v}"` });
          return z.NEVER;
        }
        return ms;
      }),
      /** The account on targets that scans log in as: least privilege, no sudo. Needed to scan. */
      login: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, 'expected a login name like gatehouse-scan').optional(),
      /** Hosts scanned (and, in a multi-host run, commands run) at once. */
      parallel: z.number().int().min(1).max(64).default(8),
      /** The most one host's scan may take, connection included. */
      timeout: duration('60s'),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** json: one JSON object a line (for machines); pretty: readable lines; auto: pretty on a terminal. */
      format: z.enum(['auto', 'json', 'pretty']).default('auto'),
    })
    .prefault({}),
  // Several nodes or workers on one store (src/cluster/): this server's name on its session rows,
  // when a node whose heartbeat stopped is taken for dead, and how many worker processes to run.
  node: z
    .strictObject({
      /** Default: the host name (env GATEHOUSE_NODE_NAME). Workers are named NAME/w1, NAME/w2, … */
      name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/, 'expected letters, digits, ".", "_", ":" or "-" (no "/")').optional(),
      /** A node silent this long has its open sessions closed as interrupted by a surviving node. */
      deadAfter: duration('30s').refine((ms) => ms >= 2_000 && ms <= 60_000, 'expected a duration from 2s to 60s'),
      /**
       * Worker processes of `serve` ("auto": one per core; 1: one process, no primary). What must
       * hold across workers (revocation, kills, MFA grace, TOTP-prompt seats, maxPerUser, the live
       * view) goes through the store and the recordings spool, as between nodes.
       */
      workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
      /** When the store cannot be reached: new logins are refused at once, live sessions end after this. */
      storeLossGrace: duration('60s'),
    })
    .prefault({}),
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = Readonly<z.output<typeof configSchema>>;
