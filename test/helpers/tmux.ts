import { execFileSync } from 'node:child_process';
import { tempDir } from './cli.js';

const servers = new Set<Tmux>();

/** Kill every tmux server this test file started and did not kill (a test that failed half-way). */
export function killAllTmux(): void {
  for (const t of servers) t.kill();
}

/**
 * Drive an interactive program in a real terminal: a private tmux server (its own socket, no user
 * config), send-keys to type, capture-pane to read the screen.
 */
export class Tmux {
  private readonly socket = `gh-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  // Its socket in a directory of its own, removed with the test file's other temp dirs, not in the
  // shared /tmp/tmux-UID (short: a socket path is limited to 107 bytes).
  private readonly socketDir = tempDir('tmux-');
  constructor(private readonly cols = 100, private readonly rows = 30) {
    servers.add(this);
  }

  private tmux(args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, '-f', '/dev/null', ...args], { encoding: 'utf8', env: { ...process.env, TMUX_TMPDIR: this.socketDir } });
  }

  start(command: string, env: Record<string, string>): void {
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`).join(' ');
    this.tmux(['new-session', '-d', '-s', 't', '-x', String(this.cols), '-y', String(this.rows), `env ${envArgs} ${command}; echo "EXIT=$?"; sleep 30`]);
  }

  keys(...keys: string[]): void {
    this.tmux(['send-keys', '-t', 't', ...keys]);
  }

  type(text: string): void {
    this.tmux(['send-keys', '-t', 't', '-l', text]);
  }

  resize(cols: number, rows: number): void {
    this.tmux(['resize-window', '-t', 't', '-x', String(cols), '-y', String(rows)]);
  }

  screen(): string {
    return this.tmux(['capture-pane', '-p', '-t', 't', '-S', '-200']);
  }

  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen();
      if (pattern.test(s)) return s;
      if (Date.now() > deadline) throw new Error(`screen never matched ${pattern}:\n${s}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  kill(): void {
    if (!servers.delete(this)) return;
    try { this.tmux(['kill-server']); } catch { /* already gone */ }
  }
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
