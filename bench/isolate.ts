/**
 * BENCH_ISOLATE=1: gatehouse and the load the bench generates (ssh clients, `script`, the target and
 * jump sshd with their sessions, the bench itself) get one CPU cgroup each, of equal weight. In
 * production the bastion has its machine to itself and its clients and targets are elsewhere; here
 * they share two cores, and without this each of the thousands of client and target processes
 * weighs as much in the scheduler as the one gatehouse process serving all of them. With equal
 * weights gatehouse can use up to one of the two cores when both groups are busy, and the load the
 * other.
 *
 * cgroup v1 (`/sys/fs/cgroup/cpu`, `cpu.shares`) or v2 (`cpu.weight`), as root. Without either, the
 * bench says so and runs unisolated.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Isolation {
  /** Move a process (and so everything it starts afterwards) into gatehouse's group. */
  server(pid: number): void;
  /** Put the bench back in its own group, remove the new ones (waits up to 5 s for their processes to go), and turn the cpu controller off again if it was off. */
  release(): Promise<void>;
  readonly describe: string;
}

export function isolate(log: (m: string) => void): Isolation | null {
  const v1 = '/sys/fs/cgroup/cpu';
  const v2 = '/sys/fs/cgroup';
  let root: string;
  let weightFile: string;
  // Where the bench was, to go back there; and whether it was us that turned the cpu controller on.
  let home = '/';
  let enabledCpu = false;
  const own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  if (fs.existsSync(path.join(v1, 'cpu.shares'))) {
    root = v1; weightFile = 'cpu.shares';
    home = own.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('cpu'))?.[2] ?? '/';
  } else if (fs.existsSync(path.join(v2, 'cgroup.controllers')) && fs.readFileSync(path.join(v2, 'cgroup.controllers'), 'utf8').includes('cpu')) {
    root = v2; weightFile = 'cpu.weight';
    home = own.find((l) => l.startsWith('0::'))?.slice(3) ?? '/';
    if (!fs.readFileSync(path.join(v2, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('cpu')) {
      try { fs.writeFileSync(path.join(v2, 'cgroup.subtree_control'), '+cpu'); enabledCpu = true; } catch { /* refused: the mkdir below says so */ }
    }
  } else {
    log('BENCH_ISOLATE: no CPU cgroup controller here; running without isolation');
    return null;
  }
  const base = path.join(root, `gatehouse-bench-${process.pid}`);
  const server = path.join(base, 'server');
  const load = path.join(base, 'load');
  try {
    for (const d of [base, server, load]) fs.mkdirSync(d);
    if (root === v2) fs.writeFileSync(path.join(base, 'cgroup.subtree_control'), '+cpu');
    const equal = root === v1 ? '1024' : '100';
    fs.writeFileSync(path.join(server, weightFile), equal);
    fs.writeFileSync(path.join(load, weightFile), equal);
    // The bench joins the load group first: every client and target it starts is born there.
    fs.writeFileSync(path.join(load, 'cgroup.procs'), String(process.pid));
  } catch (err) {
    log(`BENCH_ISOLATE: cannot set up CPU cgroups (${(err as Error).message}); running without isolation`);
    try { for (const d of [server, load, base]) fs.rmdirSync(d); } catch { /* partly made */ }
    return null;
  }
  return {
    describe: `gatehouse and the load in two CPU cgroups of equal weight (${root === v1 ? 'v1 cpu.shares' : 'v2 cpu.weight'})`,
    server(pid) {
      fs.writeFileSync(path.join(server, 'cgroup.procs'), String(pid));
    },
    async release() {
      try { fs.writeFileSync(path.join(root, home, 'cgroup.procs'), String(process.pid)); } catch {
        try { fs.writeFileSync(path.join(root, 'cgroup.procs'), String(process.pid)); } catch { /* gone */ }
      }
      // Killed clients' children (ssh under script) leave a moment after them.
      for (const d of [server, load, base]) {
        for (let i = 0; ; i++) {
          try { fs.rmdirSync(d); break; } catch (err) {
            if (i >= 50) { log(`BENCH_ISOLATE: ${d} not removed (${(err as Error).message})`); break; }
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      }
      if (enabledCpu) {
        try { fs.writeFileSync(path.join(v2, 'cgroup.subtree_control'), '-cpu'); } catch { /* another group uses it now */ }
      }
    },
  };
}
