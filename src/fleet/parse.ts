import type { DiskUse, FleetFacts, PackageManager, SshdFlags } from './facts.js';
import { splitSections, type Section } from './probes.js';

/**
 * Reads the probe's sectioned output (probes.ts) into FleetFacts. The output comes from a target,
 * so it is untrusted: every parser takes any text (huge, binary, half a line, missing fields) and
 * returns what it can read, with null for what it cannot; nothing here throws. Strings kept are
 * short and free of control characters; lists are capped.
 */
const MAX_TEXT = 200;
const MAX_LIST = 200;
const MAX_PACKAGES = 100;

/** Printable, one line, at most `max` characters. */
export function clean(s: string, max = MAX_TEXT): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim();
  return t.length > max ? t.slice(0, max) : t;
}

// No tool we parse prints a line anywhere near this long: a longer one is hostile or garbage, and
// dropping it keeps every pattern below cheap whatever the target prints.
const MAX_LINE = 4096;
const lines = (text: string | undefined): string[] =>
  (text ?? '').split('\n').filter((l) => l.length <= MAX_LINE).map((l) => l.trimEnd()).filter((l) => l.trim() !== '');

function kv(text: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of lines(text)) {
    const eq = l.indexOf('=');
    if (eq <= 0) continue;
    const k = l.slice(0, eq).trim();
    if (!m.has(k)) m.set(k, l.slice(eq + 1).trim());
  }
  return m;
}

// ── os-release ─────────────────────────────────────────────────────────────────────────────────
/** os-release(5): KEY=value, the value optionally in double or single quotes with \-escapes. */
export function parseOsRelease(text: string | undefined): FleetFacts['os'] {
  const vals = new Map<string, string>();
  for (const l of lines(text)) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(l.trim());
    if (!m || vals.has(m[1]!)) continue;
    let v = m[2]!;
    const q = v[0];
    if ((q === '"' || q === "'") && v.length >= 2 && v.endsWith(q)) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    vals.set(m[1]!, clean(v));
  }
  const get = (k: string) => vals.get(k) || null;
  return { id: get('ID'), name: get('NAME'), version: get('VERSION_ID') ?? get('VERSION'), prettyName: get('PRETTY_NAME') };
}

export function parseKernel(text: string | undefined): string | null {
  const first = lines(text)[0]?.trim() ?? '';
  return /^[\x21-\x7e]{1,200}$/.test(first) ? first : null;
}

/** /proc/uptime: "SECONDS IDLE". */
export function parseUptime(text: string | undefined): number | null {
  const m = /^\s*(\d{1,12})(?:\.\d+)?(?:\s|$)/.exec(lines(text)[0] ?? '');
  return m ? Number(m[1]) : null;
}

/** /var/run/reboot-required (Debian, Ubuntu) or `needs-restarting -r` (RHEL: exit 1 = reboot needed). */
export function parseReboot(text: string | undefined): boolean | null {
  const m = kv(text);
  const file = m.get('reboot-required');
  const nr = m.get('needs-restarting');
  if (file === 'yes' || nr === '1') return true;
  if (nr === '0') return false;
  if (file === 'no') return nr === undefined ? false : null;
  return null;
}

// ── package managers ───────────────────────────────────────────────────────────────────────────
export interface Updates { pending: number | null; security: number | null; packages: string[] }

const NONE: Updates = { pending: null, security: null, packages: [] };

/**
 * `apt-get -s upgrade`: one `Inst NAME [OLD] (NEW ORIGINS [ARCH])` line per package; a security
 * update comes from an origin like `Debian-Security:12/stable-security` or `Ubuntu:22.04/jammy-security`.
 * Also reads `apt list --upgradable` (`NAME/SUITE VERSION ARCH [upgradable from: OLD]`).
 */
export function parseApt(text: string | undefined): Updates {
  const ls = lines(text);
  const names = new Map<string, boolean>();
  let summary = false;
  for (const l of ls) {
    const inst = /^Inst (\S+)(?: \[[^\]]*\])? \((.*)\)/.exec(l);
    if (inst) { names.set(inst[1]!, /security/i.test(inst[2]!)); continue; }
    const list = /^([a-z0-9][a-z0-9+.:-]*)\/(\S+) \S+ \S+ \[upgradable from: [^\]]*\]/.exec(l);
    if (list) { names.set(list[1]!, /-security\b/.test(list[2]!)); summary = true; continue; }
    if (/^\d+ upgraded, \d+ newly installed/.test(l) || l === 'Listing...' || l.startsWith('Listing... ')) summary = true;
  }
  if (!summary && names.size === 0) return NONE;
  return done(names);
}

function done(names: Map<string, boolean>): Updates {
  let security = 0;
  for (const s of names.values()) if (s) security++;
  return { pending: names.size, security, packages: [...names.keys()].slice(0, MAX_PACKAGES).map((n) => clean(n, 100)) };
}

/**
 * `dnf|yum -q check-update`, then `exit=N` (100: updates listed, 0: none, anything else: failed).
 * Package lines are `NAME.ARCH VERSION REPO`; the "Obsoleting Packages" block that may follow is not
 * counted again. Returns the package names, or null when the command failed.
 */
export function parseCheckUpdate(text: string | undefined): string[] | null {
  const ls = lines(text);
  const exit = /^exit=(\d+)$/.exec(ls[ls.length - 1] ?? '');
  if (!exit) return null;
  if (exit[1] === '0') return [];
  if (exit[1] !== '100') return null;
  const names: string[] = [];
  const body = ls.slice(0, -1);
  for (let i = 0; i < body.length; i++) {
    const l = body[i]!;
    if (/^Obsoleting Packages/i.test(l)) break;
    const m = /^(\S+)\.([A-Za-z0-9_]+)\s+(\S+)\s+(\S+)\s*$/.exec(l);
    if (m && /\d/.test(m[3]!)) { names.push(m[1]!); continue; }
    // A name too long for its column: the version and repository wrap to the next line.
    const alone = /^(\S+)\.([A-Za-z0-9_]+)$/.exec(l);
    // One token per class in turn (no two quantifiers over the same characters): linear on any line.
    const wrapped = /^\s+(\S+)\s+\S+\s*$/.exec(body[i + 1] ?? '');
    if (alone && wrapped && /\d/.test(wrapped[1]!)) { names.push(alone[1]!); i++; }
  }
  return names;
}

export function parseDnf(updates: string | undefined, security: string | undefined): Updates {
  const all = parseCheckUpdate(updates);
  if (all === null) return NONE;
  const sec = parseCheckUpdate(security);
  const names = new Map(all.map((n) => [n, false]));
  const secSet = new Set(sec ?? []);
  for (const n of names.keys()) if (secSet.has(n)) names.set(n, true);
  const u = done(names);
  return { ...u, security: sec === null ? null : u.security };
}

/** `apk version -l "<"`: a header `Installed: Available:` then `NAME-VERSION < NEWVERSION` lines. No security data. */
export function parseApk(text: string | undefined): Updates {
  const ls = lines(text);
  if (!ls.some((l) => /^Installed:\s+Available:/.test(l))) return NONE;
  const names = new Map<string, boolean>();
  for (const l of ls) {
    // NAME-VERSION: the name ends at the first "-digit" (found by search, not by a lazy pattern).
    const m = /^(\S+)\s+<\s+\S+/.exec(l);
    const cut = m ? m[1]!.search(/-\d/) : -1;
    if (cut > 0) names.set(m![1]!.slice(0, cut), false);
  }
  return { ...done(names), security: null };
}

/** A zypper table: rows of `|`-separated cells after a header row; null when there is no table and no "No updates found". */
function zypperTable(text: string | undefined): Record<string, string>[] | null {
  const ls = lines(text);
  if (ls.some((l) => /^No (updates|patches) found/i.test(l.trim()))) return [];
  const headerAt = ls.findIndex((l) => l.includes('|') && /\bName\b/.test(l));
  if (headerAt < 0) return null;
  const header = ls[headerAt]!.split('|').map((c) => c.trim().toLowerCase());
  const rows: Record<string, string>[] = [];
  for (const l of ls.slice(headerAt + 1)) {
    if (/^[-+\s]+$/.test(l) || !l.includes('|')) continue;
    const cells = l.split('|').map((c) => c.trim());
    if (cells.length < header.length) continue;
    rows.push(Object.fromEntries(header.map((h, i) => [h, cells[i]!])));
  }
  return rows;
}

/** `zypper lu` (one row per package) and `zypper lp -g security` (needed security patches). */
export function parseZypper(updates: string | undefined, security: string | undefined): Updates {
  const rows = zypperTable(updates);
  if (rows === null) return NONE;
  const names = new Map(rows.filter((r) => r['name']).map((r) => [r['name']!, false]));
  const patches = zypperTable(security);
  const u = done(names);
  const sec = patches === null ? null : patches.filter((r) => (r['category'] ?? 'security') === 'security' && (r['status'] ?? 'needed') === 'needed').length;
  return { ...u, security: sec };
}

// ── disks, units, time, sshd ───────────────────────────────────────────────────────────────────
const PSEUDO_FS = /^(tmpfs|devtmpfs|udev|shm|none|proc|sysfs|cgroup2?|efivarfs|squashfs|overlay_tmp|run)$/;
const PSEUDO_MOUNT = /^\/(proc|sys|dev|run|snap)(\/|$)/;

/** `df -P`: Filesystem 1024-blocks Used Available Capacity Mounted-on (the mount point may hold spaces). */
export function parseDf(text: string | undefined): DiskUse[] {
  const out: DiskUse[] = [];
  const seen = new Set<string>();
  for (const l of lines(text)) {
    const m = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+%|-)\s+(\/.*)$/.exec(l);
    if (!m) continue;
    const [, fs, size, used, avail, cap, mount] = m;
    if (PSEUDO_FS.test(fs!) || PSEUDO_MOUNT.test(mount!) || seen.has(mount!)) continue;
    const sizeKb = Number(size);
    const usedKb = Number(used);
    if (!Number.isSafeInteger(sizeKb) || !Number.isSafeInteger(usedKb) || sizeKb === 0) continue;
    const pct = cap === '-' ? Math.ceil((usedKb * 100) / Math.max(1, usedKb + Number(avail))) : Number(cap!.slice(0, -1));
    if (!Number.isFinite(pct)) continue;
    seen.add(mount!);
    out.push({ mount: clean(mount!), filesystem: clean(fs!), sizeKb, usedKb, usePercent: Math.min(100, Math.max(0, pct)) });
    if (out.length >= MAX_LIST) break;
  }
  return out;
}

/** `systemctl --failed --no-legend --plain`: `UNIT LOAD ACTIVE SUB DESCRIPTION`; null without systemd. */
export function parseFailedUnits(text: string | undefined): string[] | null {
  const ls = lines(text);
  if (ls[0] !== 'systemd=yes') return null;
  const units: string[] = [];
  for (const l of ls.slice(1)) {
    const m = /^[\s●*]*([A-Za-z0-9:_.@\\-]+\.(service|socket|mount|timer|target|path|device|swap|scope|slice|automount))\s/.exec(`${l} `);
    if (m && units.length < MAX_LIST) units.push(clean(m[1]!));
  }
  return units;
}

/** timedatectl's NTPSynchronized, else chrony's "Leap status"; null when neither answered. */
export function parseTimeSync(timedatectl: string | undefined, chrony: string | undefined): boolean | null {
  const t = kv(timedatectl).get('ntp-synchronized');
  if (t === 'yes') return true;
  if (t === 'no') return false;
  const leap = lines(chrony).map((l) => /^Leap status\s*:\s*(.*)$/.exec(l)).find(Boolean);
  if (leap) return /^Normal$/i.test(leap[1]!.trim());
  return null;
}

const WEAK: Record<string, RegExp> = {
  ciphers: /^(3des-cbc|aes(128|192|256)-cbc|blowfish-cbc|cast128-cbc|arcfour.*|rijndael-cbc@lysator\.liu\.se)$/,
  macs: /^(hmac-md5.*|hmac-sha1(-96)?(-etm@openssh\.com)?|umac-64(-etm)?@openssh\.com|hmac-ripemd160.*)$/,
  kexalgorithms: /^(diffie-hellman-group1-sha1|diffie-hellman-group14-sha1|diffie-hellman-group-exchange-sha1)$/,
  hostkeyalgorithms: /^(ssh-rsa|ssh-dss|ssh-rsa-cert-v01@openssh\.com|ssh-dss-cert-v01@openssh\.com)$/,
  pubkeyacceptedalgorithms: /^(ssh-rsa|ssh-dss|ssh-rsa-cert-v01@openssh\.com|ssh-dss-cert-v01@openssh\.com)$/,
};

/** Red flags in `sshd -T` (lower-case `key value` lines); unreadable when it printed no config. */
export function parseSshd(text: string | undefined): SshdFlags {
  const conf = new Map<string, string>();
  for (const l of lines(text)) {
    const m = /^([a-z][a-z0-9]*) (.+)$/.exec(l.trim());
    if (m && !conf.has(m[1]!)) conf.set(m[1]!, m[2]!);
  }
  if (!conf.has('port') && conf.size < 5) return { readable: false, flags: [] };
  const flags: string[] = [];
  for (const k of ['passwordauthentication', 'permitemptypasswords', 'permituserenvironment']) if (conf.get(k) === 'yes') flags.push(`${k} yes`);
  if (conf.get('permitrootlogin') === 'yes') flags.push('permitrootlogin yes');
  for (const [k, re] of Object.entries(WEAK)) {
    const weak = (conf.get(k) ?? '').split(',').filter((a) => re.test(a));
    if (weak.length > 0) flags.push(clean(`weak ${k}: ${weak.join(',')}`));
  }
  return { readable: true, flags: flags.slice(0, 50) };
}

// ── the whole output ───────────────────────────────────────────────────────────────────────────
function updatesOf(sections: Map<Section, string>): FleetFacts['updates'] {
  const raw = kv(sections.get('pkg')).get('manager');
  const manager: PackageManager | null = raw === 'apt' || raw === 'dnf' || raw === 'yum' || raw === 'apk' || raw === 'zypper' ? raw : null;
  let u: Updates;
  switch (manager) {
    case 'apt': u = parseApt(sections.get('apt')); break;
    case 'dnf': u = parseDnf(sections.get('dnf'), sections.get('dnf-security')); break;
    case 'yum': u = parseDnf(sections.get('yum'), sections.get('yum-security')); break;
    case 'apk': u = parseApk(sections.get('apk')); break;
    case 'zypper': u = parseZypper(sections.get('zypper'), sections.get('zypper-security')); break;
    case null: u = NONE; break;
    default: { const never: never = manager; return never; }
  }
  return { manager, ...u };
}

export function parseProbeOutput(output: string, cut = false): FleetFacts {
  const s = splitSections(output);
  const disks = parseDf(s.get('df'));
  return {
    os: parseOsRelease(s.get('os')),
    kernel: parseKernel(s.get('kernel')),
    uptimeSeconds: parseUptime(s.get('uptime')),
    rebootRequired: parseReboot(s.get('reboot')),
    updates: updatesOf(s),
    disks,
    diskMaxPercent: disks.length === 0 ? null : Math.max(...disks.map((d) => d.usePercent)),
    failedUnits: parseFailedUnits(s.get('systemd')),
    timeSynced: parseTimeSync(s.get('time'), s.get('chrony')),
    sshd: parseSshd(s.get('sshd')),
    truncated: cut || !s.has('end'),
  };
}
