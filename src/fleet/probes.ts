/**
 * The fleet probe: one read-only POSIX sh script, run over an exec channel as `fleet.login`. It
 * changes nothing on the target (no package-cache refresh as root, no lock taken, no file written)
 * and prints sections, each after a marker line, that parse.ts reads. Every command that can hang
 * (a dead NFS mount under df, a package manager waiting on a lock or the network) runs under
 * `timeout` when the target has it; the scanner also cuts the whole output at MAX_PROBE_OUTPUT and
 * the whole run at `fleet.timeout`, so a hostile or broken target cannot hold a scan or fill memory.
 *
 * The script contains no single quote, so it travels as `/bin/sh -c '…'` whatever the login shell
 * is, and the exact text stands in the channel's audit row and recording: what the bastion ran on
 * a target is auditable like anything an operator runs.
 */
export const MARKER_PREFIX = '@@gatehouse-fleet:';
export const MARKER_SUFFIX = '@@';

/** What the scanner keeps of a probe's output; the rest is cut (and the result says truncated). */
export const MAX_PROBE_OUTPUT = 1024 * 1024;

export const SECTIONS = ['os', 'kernel', 'uptime', 'reboot', 'pkg', 'apt', 'dnf', 'dnf-security', 'yum', 'yum-security', 'apk', 'zypper', 'zypper-security', 'df', 'systemd', 'time', 'chrony', 'sshd', 'end'] as const;
export type Section = (typeof SECTIONS)[number];

const SCRIPT_LINES = [
  'LC_ALL=C; export LC_ALL',
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH; export PATH',
  'T=; if command -v timeout >/dev/null 2>&1; then T="timeout 30"; fi',
  `s() { printf "\\n${MARKER_PREFIX}%s${MARKER_SUFFIX}\\n" "$1"; }`,
  's os; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null',
  's kernel; uname -r',
  's uptime; cat /proc/uptime 2>/dev/null',
  's reboot',
  'if [ -f /var/run/reboot-required ]; then echo reboot-required=yes; else echo reboot-required=no; fi',
  'if command -v needs-restarting >/dev/null 2>&1; then $T needs-restarting -r >/dev/null 2>&1; echo needs-restarting=$?; fi',
  's pkg',
  'if command -v apt-get >/dev/null 2>&1; then echo manager=apt; s apt; $T apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null',
  'elif command -v dnf >/dev/null 2>&1; then echo manager=dnf; s dnf; $T dnf -q check-update 2>/dev/null; echo exit=$?; s dnf-security; $T dnf -q check-update --security 2>/dev/null; echo exit=$?',
  'elif command -v yum >/dev/null 2>&1; then echo manager=yum; s yum; $T yum -q check-update 2>/dev/null; echo exit=$?; s yum-security; $T yum -q check-update --security 2>/dev/null; echo exit=$?',
  'elif command -v apk >/dev/null 2>&1; then echo manager=apk; s apk; $T apk version -l "<" 2>/dev/null',
  'elif command -v zypper >/dev/null 2>&1; then echo manager=zypper; s zypper; $T zypper -q --non-interactive --no-refresh lu 2>/dev/null; s zypper-security; $T zypper -q --non-interactive --no-refresh lp -g security 2>/dev/null',
  'else echo manager=none; fi',
  's df; $T df -P 2>/dev/null',
  's systemd',
  'if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd=yes; $T systemctl --failed --no-legend --plain --no-pager 2>/dev/null; else echo systemd=no; fi',
  's time',
  'if [ -d /run/systemd/system ] && command -v timedatectl >/dev/null 2>&1; then echo ntp-synchronized=$($T timedatectl show -p NTPSynchronized --value 2>/dev/null); fi',
  's chrony; if command -v chronyc >/dev/null 2>&1; then $T chronyc tracking 2>/dev/null; fi',
  's sshd; if command -v sshd >/dev/null 2>&1; then $T sshd -T 2>/dev/null; fi',
  's end',
];

export const PROBE_SCRIPT = SCRIPT_LINES.join('\n') + '\n';

/** The exec command: the script itself, for /bin/sh whatever the login shell is. */
export function probeCommand(): string {
  if (PROBE_SCRIPT.includes("'")) throw new Error('the probe script must not contain a single quote');
  return `/bin/sh -c '${PROBE_SCRIPT}'`;
}

/**
 * Splits probe output into its sections. A marker counts only as a whole line with a known name;
 * text before the first marker (a login banner, a motd) is ignored; a section that appears twice
 * (a target printing markers of its own) keeps its first occurrence.
 */
export function splitSections(output: string): Map<Section, string> {
  const out = new Map<Section, string>();
  const known = new Set<string>(SECTIONS);
  let current: Section | null = null;
  let buf: string[] = [];
  const flush = () => {
    if (current !== null && !out.has(current)) out.set(current, buf.join('\n'));
    buf = [];
  };
  for (const line of output.split('\n')) {
    const l = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (l.startsWith(MARKER_PREFIX) && l.endsWith(MARKER_SUFFIX)) {
      const name = l.slice(MARKER_PREFIX.length, l.length - MARKER_SUFFIX.length);
      if (known.has(name)) {
        flush();
        current = name as Section;
        continue;
      }
    }
    if (current !== null) buf.push(l);
  }
  flush();
  return out;
}
