import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

/** A free TCP port on loopback (the OS picks it; we release it just before use). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when the text appears in stdout or stderr (bounded by timeoutMs). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Signal by PID and wait for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<ChildProcess>();
const stoppers = new Map<ChildProcess, () => Promise<number | null>>();
// A test that fails half-way must not leave servers behind: stop what we started, by PID.
process.on('exit', () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
    try { process.kill(c.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

/**
 * ownSession: the process leads a session of its own (setsid), as a daemon under systemd or in a
 * container does. The bench needs it: with the kernel's autogroup scheduling on, every session is one
 * scheduling group, and a server left in the bench's session shares one group's CPU share with the
 * bench's own load generators.
 */
export function startProc(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; ownSession?: boolean } = {}): Proc {
  const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.ownSession ?? false });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); waiters.forEach((w) => w()); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); waiters.forEach((w) => w()); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { waiters.forEach((w) => w()); resolve(code); }));
  if (child.pid !== undefined) running.add(child);
  void exited.then(() => { running.delete(child); stoppers.delete(child); });
  const proc: Proc = {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(out) || pattern.test(err)) { cleanup(); resolve(); }
          else if (child.exitCode !== null) { cleanup(); reject(new Error(`process exited (${child.exitCode}) before ${pattern}\nstdout: ${out}\nstderr: ${err}`)); }
        };
        const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out waiting for ${pattern}\nstdout: ${out}\nstderr: ${err}`)); }, timeoutMs);
        const cleanup = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, signal);
      const timer = setTimeout(() => { if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL'); }, 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  stoppers.set(child, () => proc.stop());
  return proc;
}

/** Stop (by PID) every process startProc() started in this test file that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...stoppers.values()].map((stop) => stop().catch(() => null)));
}

/** Calls `fn` every 150 ms until it returns a value, for at most `ms`; then fails naming `what`. */
export async function poll<T>(what: string, fn: () => T | undefined, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
