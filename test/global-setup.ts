import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The whole test run gets one temporary root, handed to every worker and every process they start
 * as TMPDIR (sshd, gatehouse, ssh, tmux sockets, chromium profiles). test/setup.ts removes each
 * file's directories as the file ends; the teardown here stops any process still running from the
 * root (by PID) and removes the root, also after failures, so nothing is left in the machine's
 * temp directory run after run.
 */
export default function setup(): () => void {
  const outer = os.tmpdir();
  const root = fs.mkdtempSync(path.join(outer, 'gh-run-'));
  process.env.TMPDIR = root;
  return () => {
    process.env.TMPDIR = outer;
    const running = processesUsing(root);
    for (const pid of running) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    // Each file removes its own directories as it ends (test/setup.ts): anything here was missed.
    // Tool caches (tsx compiles the offload worker's TypeScript under vitest) are not a test's to
    // remove; they go with the root like everything else.
    const files = fs.readdirSync(root).filter((f) => !TOOL_CACHES.test(f));
    fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    const problems = [
      ...running.map((pid) => `process ${pid} was still running (killed)`),
      ...files.map((f) => `${f} was left in the temp directory (removed)`),
    ];
    if (problems.length === 0) return;
    console.warn(`test teardown: tests left things behind:\n  ${problems.join('\n  ')}`);
    // scripts/test.sh turns this into a failed run.
    const report = process.env.GATEHOUSE_TEST_LEFTOVERS;
    if (report) fs.writeFileSync(report, problems.join('\n') + '\n');
  };
}

const TOOL_CACHES = /^(tsx-\d+|node-compile-cache|v8-compile-cache(-\d+)?)$/;

/** PIDs whose command line or working directory is under dir (Linux /proc; none elsewhere). */
function processesUsing(dir: string): number[] {
  if (!fs.existsSync('/proc')) return [];
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const cwd = fs.readlinkSync(`/proc/${name}/cwd`);
      if (cmdline.includes(dir) || cwd.startsWith(dir)) pids.push(Number(name));
    } catch { /* exited meanwhile, or not ours to read */ }
  }
  return pids;
}
