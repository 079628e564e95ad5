/**
 * What a fleet scan learned about one host. Every field may be unknown (null): a target without
 * the tool, a section cut short, output that does not parse. Unknown is never shown as "fine".
 */
export type PackageManager = 'apt' | 'dnf' | 'yum' | 'apk' | 'zypper';

export interface DiskUse {
  mount: string;
  filesystem: string;
  sizeKb: number;
  usedKb: number;
  /** Used share of the space a non-root user can have (df's Capacity), 0-100. */
  usePercent: number;
}

export interface SshdFlags {
  /** `sshd -T` ran for the scan login (it usually needs root to read the host keys). */
  readable: boolean;
  /** Red flags, e.g. `passwordauthentication yes`, `permitrootlogin yes`, `weak ciphers: 3des-cbc`. */
  flags: string[];
}

export interface FleetFacts {
  os: { id: string | null; name: string | null; version: string | null; prettyName: string | null };
  kernel: string | null;
  uptimeSeconds: number | null;
  rebootRequired: boolean | null;
  updates: { manager: PackageManager | null; pending: number | null; security: number | null; packages: string[] };
  disks: DiskUse[];
  /** The fullest mount's use in percent (the high-water mark), or null. */
  diskMaxPercent: number | null;
  /** Failed systemd units; null without systemd. */
  failedUnits: string[] | null;
  /** The clock is synchronized (timedatectl or chrony); null when neither says. */
  timeSynced: boolean | null;
  sshd: SshdFlags;
  /** The output was cut (over the size limit or the time limit) or the end marker never came. */
  truncated: boolean;
}

/** One host's latest scan, as stored. */
export interface FleetScanRecord {
  host: string;
  scannedAt: number;
  reachable: boolean;
  /** Why the scan failed (unreachable, host key changed, timeout), or null. */
  error: string | null;
  /** The recorded session of the scan (null when it was refused before a session opened). */
  sessionId: string | null;
  durationMs: number;
  facts: FleetFacts | null;
}
