/**
 * Which exec commands are file transfers (the `sftp` right, recorded as a transfer marker rather
 * than a terminal). The target's sshd hands the command to the login shell, so a prefix match is a
 * hole: `scp -t /x; bash -i` would run a shell that is neither authorized as exec nor recorded.
 * A command is a transfer only when its whole argv is one of the forms the stock clients send and
 * no word holds anything a shell would interpret; everything else is exec.
 *
 * The forms, as OpenSSH 9 `scp -O` and rsync 3.2 send them:
 *   scp [-v] [-r] [-p] [-d] -t|-f [--] PATH
 *   rsync --server [--sender] OPTIONS… . PATH…
 *   /usr/lib/openssh/sftp-server (and its other install paths), internal-sftp
 */

/**
 * A word the shell takes literally: no ; | & $ ` ( ) < > quotes, backslashes, globs, braces,
 * comments, history or job expansion, and no control characters. Non-ASCII letters and digits
 * are fine (shell metacharacters are all ASCII). A leading `~` only expands to a home directory.
 */
const PLAIN_WORD = /^[\p{L}\p{N}\p{M}._/@:+,=~-]+$/u;

/** Flags OpenSSH's scp passes to the remote scp (verbose, recursive, preserve times, target is a directory). */
const SCP_FLAGS = new Set(['-v', '-r', '-p', '-d']);

const SCP_PROGRAMS = new Set(['scp', '/usr/bin/scp']);
const RSYNC_PROGRAMS = new Set(['rsync', '/usr/bin/rsync', '/usr/local/bin/rsync', '/bin/rsync']);

/** Only the installed server: a path of the operator's choosing could be a script they uploaded. */
const SFTP_SERVERS = new Set([
  'internal-sftp',
  '/usr/lib/openssh/sftp-server',
  '/usr/libexec/openssh/sftp-server',
  '/usr/libexec/sftp-server',
  '/usr/lib/ssh/sftp-server',
  '/usr/lib/sftp-server',
  '/usr/local/libexec/sftp-server',
]);

/**
 * rsync server options, as an allowlist: anything else is exec. A deny-list is not enough, since
 * options exist that make the server read its real argv from stdin (`-s`, `--protect-args`,
 * `--secluded-args`) or take options from elsewhere (`-M`), after which `--daemon --config=FILE`
 * runs the commands FILE names. A short cluster is flag letters that take no argument, then
 * optionally the `e.` capability string the client always appends (`-vlogDtpre.iLsfxCIvu`).
 */
const RSYNC_SHORT = /^-[vlogDtprRzcubHSxWInkKLEAXOJmyqihCPFNU80d]*(e\.[A-Za-z0-9]*)?$/;
const RSYNC_LONG = new RegExp('^--(' + [
  'sender', 'delete', 'delete-before', 'delete-during', 'delete-delay', 'delete-after', 'delete-excluded', 'partial',
  'inplace', 'append', 'append-verify', 'ignore-errors', 'force', 'numeric-ids', 'delay-updates', 'fuzzy', 'size-only',
  'ignore-times', 'existing', 'ignore-existing', 'remove-source-files', 'no-implied-dirs', 'safe-links', 'munge-links',
  'mkpath', 'list-only', 'no-whole-file', 'no-W', 'stats', 'prune-empty-dirs', 'one-file-system', 'ignore-missing-args',
  'delete-missing-args', 'open-noatime', 'preallocate', 'old-args', 'new-compress', 'old-compress', 'copy-unsafe-links',
  '(compress-level|max-size|min-size|timeout|bwlimit|max-delete|checksum-choice|compress-choice|modify-window|info|debug|iconv|chmod|suffix|backup-dir|partial-dir)=[A-Za-z0-9.,:+=_~/-]+',
].join('|') + ')$');
/** Long options whose value the client sends as the next word. */
const RSYNC_WITH_VALUE = new Set(['--backup-dir', '--partial-dir', '--suffix']);

/** The command's words, or null when the shell would do more than split it on blanks. */
export function plainArgv(command: string): string[] | null {
  const words = command.trim().split(/[ \t]+/);
  if (words.length === 0 || words[0] === '') return null;
  return words.every((w) => PLAIN_WORD.test(w)) ? words : null;
}

function isPath(word: string): boolean {
  return !word.startsWith('-');
}

function isScp(argv: string[]): boolean {
  return scpMode(argv) !== null;
}

/**
 * An scp server command's mode, read at its one position (after scp's own flags): `t` receives
 * (an upload), `f` sends (a download); null when argv is not an scp server command. Whatever
 * follows the mode is the path, even `-f` after `--`: `scp -t -- -f` is an upload into a file named
 * "-f", never a download. Admission (readsOnly) and the file audit (scpCommand) both read this.
 */
export function scpMode(argv: string[]): { mode: 't' | 'f'; flags: string[]; path: string } | null {
  if (!SCP_PROGRAMS.has(argv[0]!)) return null;
  let i = 1;
  while (i < argv.length && SCP_FLAGS.has(argv[i]!)) i++;
  const flag = argv[i];
  if (flag !== '-t' && flag !== '-f') return null;
  const flags = argv.slice(1, i);
  i++;
  // OpenSSH puts `--` before a path that starts with a dash.
  if (argv[i] === '--') return argv.length === i + 2 ? { mode: flag === '-t' ? 't' : 'f', flags, path: argv[i + 1]! } : null;
  return argv.length === i + 1 && isPath(argv[i]!) ? { mode: flag === '-t' ? 't' : 'f', flags, path: argv[i]! } : null;
}

function isRsyncServer(argv: string[]): boolean {
  if (!RSYNC_PROGRAMS.has(argv[0]!) || argv[1] !== '--server') return false;
  const dot = argv.indexOf('.', 2);
  if (dot < 0 || dot === argv.length - 1) return false;
  const options = argv.slice(2, dot);
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    if (RSYNC_WITH_VALUE.has(o) && i + 1 < options.length && isPath(options[i + 1]!)) i++;
    else if (!RSYNC_SHORT.test(o) && !RSYNC_LONG.test(o)) return false;
  }
  return argv.slice(dot + 1).every(isPath);
}

function isSftpServer(argv: string[]): boolean {
  return argv.length === 1 && SFTP_SERVERS.has(argv[0]!);
}

export function isTransferCommand(command: string): boolean {
  const argv = plainArgv(command);
  return argv !== null && (isScp(argv) || isRsyncServer(argv) || isSftpServer(argv));
}

/**
 * A transfer that cannot change the target's files (or one whose writes gatehouse refuses itself,
 * the sftp server): downloads with `scp -f` and `rsync --server --sender` (without
 * --remove-source-files, which deletes what it sent), and the sftp server. The `sftp-read` right
 * admits only these; uploads need `sftp`.
 */
export function readsOnly(kind: 'shell' | 'exec' | 'subsystem', command: string | null): boolean {
  if (kind === 'subsystem') return true;
  const argv = command === null ? null : plainArgv(command);
  if (argv === null) return false;
  if (isSftpServer(argv)) return true;
  const scp = scpMode(argv);
  if (scp) return scp.mode === 'f';
  if (isRsyncServer(argv)) return argv.includes('--sender') && !argv.includes('--remove-source-files');
  return false;
}

/** Whether a transfer command runs the sftp server (its stream is SFTP). */
export function isSftpServerCommand(command: string | null): boolean {
  const argv = command === null ? null : plainArgv(command);
  return argv !== null && isSftpServer(argv);
}
