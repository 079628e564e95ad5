import { describe, expect, it } from 'vitest';
import { isFileTransfer } from '../../../src/proxy/target.js';

/**
 * The real forms were captured from the stock clients of this machine (OpenSSH 9.2 `scp -O`,
 * rsync 3.2) by giving them a fake ssh (`scp -S` / `rsync -e`) that logs the remote command.
 * test/e2e/transfer-argv.test.ts runs the clients for real through gatehouse.
 */
const REAL_FORMS = [
  // scp -O upload / download, with -r -p, several sources (-d), a target starting with a dash, -v, ~
  'scp -t /tmp/x', 'scp -r -p -t /tmp/x', 'scp -d -t /tmp/dir', 'scp -f /tmp/x', 'scp -r -p -f /tmp/x',
  'scp -d -f a', 'scp -t -- -weird', 'scp -v -t .', 'scp -t ~/x', 'scp -r -f /etc',
  // rsync push / pull, with options that travel in argv
  'rsync --server -e.LsfxCIvu . /tmp/x',
  'rsync --server -logDtpre.iLsfxCIvu . /tmp/x/',
  'rsync --server --sender -logDtpre.iLsfxCIvu . /tmp/x/',
  'rsync --server --sender -vlogDtprze.iLsfxCIvu . /tmp/x/',
  'rsync --server --sender -logDtpre.iLsfxCIvu . /tmp/a /tmp/b',
  'rsync --server -logDtpre.iLsfxCIvu --compress-level=3 --timeout=30 --bwlimit=1000 --delete . /tmp/q',
  'rsync --server -blHogDtpAXrce.iLsfxCIvu --backup-dir /tmp/bk --suffix=~ --numeric-ids --inplace . /tmp/q',
  'rsync --server --sender -e.LsfxCIvu . .',
  'rsync --server -vlogDtpre.iLsfxC . /x',
  '/usr/bin/rsync --server -logDtpre.iLsfxCIvu . /tmp/x',
  // sftp-server run as a command (sftp -s PATH)
  '/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', 'internal-sftp',
  // non-ASCII file names are plain words to a shell
  'scp -t /srv/données/rapport.pdf',
];

const ATTACKS = [
  'scp -t /x; bash -i', 'scp -t /x && id', 'scp -t /x || id', 'scp -t /x | sh', 'scp -t /x & id', 'scp -t $(id)', 'scp -t `id`',
  'scp -t ${HOME}', 'scp -t /x\nid', 'scp -t /x\rid', 'scp -t /x >/etc/passwd', 'scp -t </etc/shadow', 'scp -t "/x"; id', "scp -t '/x'",
  'scp -t /x\\;id', 'scp -t /tmp/*', 'scp -t /tmp/?', 'scp -t /tmp/[ab]', 'scp -t /tmp/{a,b}', 'scp -t /x #', 'scp -t !!', 'scp -t (id)',
  'scp -t a b', 'scp -f', 'scp -t', 'scp -t -x', 'scp -t -- a b', 'scp -t --', 'scp -x -t /x', 'scp -t -f /x', 'scp -rt /x',
  'scp', 'scpfoo -t /x', 'xscp -t /x', '/tmp/scp -t /x', 'sh -c scp -t /x', 'scp -t /x\u0000id', 'scp -t /x\u001b[2K',
  'rsync --server --sender -logDtpre.iLsfxCIvu . /x ; id', 'rsync --server --sender -logDtpre.iLsfxCIvu . /x;id',
  'rsync --server -e.LsfxC . $(id)', 'rsync --server -e.LsfxC', 'rsync --server -e.LsfxC .', 'rsync --server -e.LsfxC . -x',
  'rsync --server --daemon .', 'rsync --server -s . /tmp/x', 'rsync --server --protect-args . x', 'rsync --server --secluded-args . x',
  'rsync --server -M--x . x', 'rsync --server -vlogDtpsre.iLsfxC . /x', 'rsync --server --log-file=/x --log-file-format=%n . /y',
  'rsync --server --remote-option=--daemon . x', 'rsync --server -e . x', 'rsync --server -B1024 . x', 'rsync --server --files-from=/etc/shadow . x',
  'rsync --server --daemon --config=/tmp/evil.conf . /x', 'rsync --server --config=/tmp/c . /x',
  'rsync --sender . /x', 'rsync -av . /x', '/tmp/rsync --server -e.LsfxC . /x', 'rsync --server -e.LsfxC . /tmp/sp\\ ace',
  '/usr/lib/openssh/sftp-server; id', '/usr/lib/openssh/sftp-server -d /tmp', '/tmp/sftp-server', 'sftp-server', '/home/x/sftp-server',
  'ls -la', 'bash -i', '', '   ',
];

describe('isFileTransfer: whole-argv match', () => {
  it.each(REAL_FORMS)('transfer: %j', (command) => {
    expect(isFileTransfer('exec', command)).toBe(true);
  });

  it.each(ATTACKS)('exec, not a transfer: %j', (command) => {
    expect(isFileTransfer('exec', command)).toBe(false);
  });

  it('the sftp subsystem is a transfer; a shell is not', () => {
    expect(isFileTransfer('subsystem', 'sftp')).toBe(true);
    expect(isFileTransfer('shell', null)).toBe(false);
    expect(isFileTransfer('exec', null)).toBe(false);
  });

  it('blanks around and between the words do not matter', () => {
    expect(isFileTransfer('exec', '  scp  -t\t/tmp/x ')).toBe(true);
  });
});
