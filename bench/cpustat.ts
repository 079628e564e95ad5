/**
 * Where the machine's CPU goes while a bench runs: every INTERVAL seconds, the split of all CPU
 * time (user, system, idle, steal… from /proc/stat) and the 8 process names that used the most of
 * it (ticks summed over every process of that name, from /proc/PID/stat; 100 ticks = one core for
 * one second). Run it next to `npm run bench`:
 *
 *   npx tsx bench/cpustat.ts 5 60 > cpu.log &
 */
import fs from 'node:fs';

const interval = Number(process.argv[2] ?? 5);
const count = Number(process.argv[3] ?? 60);
const FIELDS = ['user', 'nice', 'sys', 'idle', 'iowait', 'irq', 'softirq', 'steal'];

function machine(): number[] {
  return fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
}

function processes(): Map<string, { name: string; ticks: number }> {
  const out = new Map<string, { name: string; ticks: number }>();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { continue; } // gone meanwhile
    const close = stat.lastIndexOf(')');
    const f = stat.slice(close + 2).split(' ');
    out.set(pid, { name: stat.slice(stat.indexOf('(') + 1, close), ticks: Number(f[11]) + Number(f[12]) });
  }
  return out;
}

let m0 = machine();
let p0 = processes();
for (let i = 0; i < count; i++) {
  await new Promise((r) => setTimeout(r, interval * 1000));
  const m1 = machine();
  const p1 = processes();
  const d = m1.map((v, k) => v - (m0[k] ?? 0));
  const total = d.reduce((a, b) => a + b, 0) || 1;
  const byName = new Map<string, number>();
  for (const [pid, p] of p1) {
    const before = p0.get(pid);
    if (before) byName.set(p.name, (byName.get(p.name) ?? 0) + p.ticks - before.ticks);
  }
  const top = [...byName].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([n, t]) => `${n}=${t}`).join(' ');
  const split = FIELDS.map((f, k) => `${f}=${(((d[k] ?? 0) * 100) / total).toFixed(0)}%`).join(' ');
  console.log(`${new Date().toISOString().slice(11, 19)} ${split} | ${top}`);
  m0 = m1;
  p0 = p1;
}
