/**
 * npm run bench: gatehouse against stock OpenSSH on this machine, every path in the same run and
 * interleaved. Paths: (a) direct ssh → sshd, (b) OpenSSH ProxyJump through a stock sshd jump host,
 * (c) gatehouse command mode, (d) gatehouse -J, recording on as in production. Prints a table and
 * writes bench/results.json. Everything listens on 127.0.0.1 and every process is stopped by PID.
 *
 * Knobs (environment): BENCH_GIB (size of the bulk transfers, default 1), BENCH_SETUP_RUNS (20),
 * BENCH_KEYS (500), BENCH_IDLE (concurrency: idle sessions, default 200), BENCH_TYPING (50),
 * BENCH_REVOKE (20), BENCH_ROUNDS (rounds of each bulk scenario, median reported; 3), BENCH_ONLY (comma list of scenarios to run: download, upload, setup, echo,
 * recording, sftp, concurrency, revocation, search; default all; search: see bench/search.ts), BENCH_SFTP_MIB (the sftp file, 256), BENCH_CPU_PROF (a directory: gatehouse runs
 * with --cpu-prof and writes its profile there when the bench stops it), BENCH_WORKERS (gatehouse's
 * `serve --workers N`, default 1: one process; the RSS figures then sum the primary and its workers),
 * BENCH_STORE (the search scenario's store: sqlite, postgres or both; default sqlite),
 * BENCH_ISOLATE=1 (gatehouse and the bench's load in two CPU cgroups of equal weight: bench/isolate.ts),
 * BENCH_TYPING_PHASE (concurrency: step, every typist starting at once so keystrokes come in
 * waves, the default and how earlier figures were taken; or random, each starting at its own moment),
 * BENCH_TYPING_DIRECT (concurrency: sessions straight to the target that type along with the
 * gatehouse ones, the baseline under the same load; default a tenth of BENCH_TYPING, at least 5).
 *
 * The concurrency row also gives gatehouse's CPU time per opened session (every gatehouse process,
 * user + kernel, over the opening phase): it depends far less on what else the machine runs than
 * the opening rate does, which is set mostly by the ssh clients and the target sshd. Its memory per
 * session is measured on settled RSS (sampled until two readings 3 s apart agree), before and after.
 * gatehouse runs in a session of its own (setsid), as under systemd or in a container, and so does
 * every client: with the kernel's autogroup scheduling each session is one scheduling group, and a
 * server left in the bench's session would share one group's CPU with the bench's load generators.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { openDataDir, preparePrivateFile } from '../src/datadir/datadir.js';
import { seal } from '../src/datadir/seal.js';
import { newSecret } from '../src/auth/totp.js';
import { parsePublicKey } from '../src/auth/sshkey.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { systemClock } from '../src/shared/clock.js';
import { freePort, startProc, type Proc } from '../test/helpers/proc.js';
import { startSshd, LOGIN } from '../test/helpers/sshd.js';
import { isolate } from './isolate.js';
import { searchScenario, searchStores } from './search.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'gatehouse.js');
const GIB = Number(process.env.BENCH_GIB ?? 1);
const BYTES = Math.round(GIB * 1024 ** 3);
const SETUP_RUNS = Number(process.env.BENCH_SETUP_RUNS ?? 20);
const KEYS = Number(process.env.BENCH_KEYS ?? 500);
const IDLE = Number(process.env.BENCH_IDLE ?? 200);
const TYPING = Number(process.env.BENCH_TYPING ?? 50);
// Before any process is started: the bench and everything it starts join the load group.
const iso = process.env.BENCH_ISOLATE === '1' ? isolate((m) => console.log(`[bench] ${m}`)) : null;
const TYPING_PHASE = process.env.BENCH_TYPING_PHASE === 'random' ? 'random' : 'step';
const TYPING_DIRECT = Number(process.env.BENCH_TYPING_DIRECT ?? Math.max(5, Math.round(TYPING / 10)));
const REVOKE = Number(process.env.BENCH_REVOKE ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SFTP_MIB = Number(process.env.BENCH_SFTP_MIB ?? 256);
const DEADLINE = Date.now() + 9.5 * 60_000;
/** Rounds after the first are skipped past this point, so the other scenarios keep their time. */
const BULK_DEADLINE = Date.now() + 5 * 60_000;
const ONLY = new Set((process.env.BENCH_ONLY ?? 'download,upload,setup,echo,recording,sftp,concurrency,revocation,search').split(',').map((x) => x.trim()));
const PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : null;
const WORKERS = process.env.BENCH_WORKERS ?? '1';
if (!/^([1-9][0-9]{0,2}|auto)$/.test(WORKERS)) throw new Error(`BENCH_WORKERS: a number of workers or "auto", got "${WORKERS}"`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'));
const procs: Proc[] = [];
// Clients run in sessions of their own (see the top): a Ctrl-C on the terminal does not reach them,
// so the bench ends their process groups itself, on every way out.
const clientGroups = new Set<number>();
function detachedClient(c: ChildProcess): ChildProcess {
  if (c.pid !== undefined) { clientGroups.add(c.pid); c.once('exit', () => clientGroups.delete(c.pid!)); }
  // A keystroke written to a client that was just killed (Ctrl-C, a timeout) must not crash the bench.
  c.stdin?.on('error', () => undefined);
  return c;
}
process.on('exit', () => {
  for (const pid of clientGroups) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
});
const log = (...a: unknown[]) => console.error('[bench]', ...a);

// ---------------------------------------------------------------- setup
interface Op { name: string; key: string; secret: string }

async function setup() {
  const keyFile = path.join(dir, 'id_op');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
  const data = path.join(dir, 'data');
  const dd = openDataDir(data);
  preparePrivateFile(dd.paths.db);
  const clientPub = dd.clientPublicKey;
  const opPub = fs.readFileSync(`${keyFile}.pub`, 'utf8').trim();
  // startSshd sets SHLVL=1 for its sessions: a login's ~/.bashrc (this machine's root runs `pyenv
  // init`, seconds a session under load, serialized on pyenv's lock) is not what is measured.
  const target = await startSshd([clientPub, opPub]);
  const jump = await startSshd([opPub]);
  procs.push(target.proc, jump.proc);

  // Operators: one per gatehouse login (a TOTP step is accepted once per user), made in-process.
  const store = createSqliteStore(dd.paths.db, systemClock);
  const meta = { actor: 'bench' };
  await store.hosts.add({ name: 'target1', address: '127.0.0.1', port: target.port, groups: [], hostKey: target.hostKey, hostKeyFingerprint: parsePublicKey(target.hostKey).fingerprint }, meta);
  const ops: Op[] = [];
  const nOps = 4 * SETUP_RUNS + 2 * REVOKE + IDLE + 60;
  for (let i = 0; i < nOps; i++) {
    const name = `op${i}`;
    const k = path.join(dir, `id_${name}`);
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: name });
    fs.writeFileSync(k, pair.private, { mode: 0o600 });
    await store.users.add(name, ['operator'], meta);
    await store.keys.add(name, [parsePublicKey(pair.public)], meta);
    const secret = newSecret();
    await store.totp.enroll(name, (uid) => seal(dd.masterKey, Buffer.from(secret), `totp:user:${uid}`), true, meta);
    await store.grants.add({ who: { kind: 'user', name }, where: { kind: 'host', name: 'target1' }, logins: [LOGIN], rights: ['shell', 'exec', 'sftp'], until: null, reason: 'bench' }, meta);
    ops.push({ name, key: k, secret });
  }
  store.close();
  // One server per data directory (the second would be refused by the data-dir lock): the server
  // without recording gets a copy, made while no server runs.
  const dataNoRec = `${data}-norec`;
  fs.cpSync(data, dataNoRec, { recursive: true });

  const askpass = path.join(dir, 'askpass.sh');
  fs.writeFileSync(askpass, '#!/bin/sh\nexec oathtool --totp -b "$GH_TOTP_SECRET"\n', { mode: 0o755 });
  const start = async (extra: string[]) => {
    const port = await freePort();
    // freePort only finds a port free now: two calls in a row can return the same one.
    let webPort = await freePort();
    while (webPort === port) webPort = await freePort();
    const cfg = path.join(dir, `gh-${port}.yaml`);
    fs.writeFileSync(cfg, `sessions:\n  maxPerUser: 2000\n  idleTimeout: 1h\nlog:\n  level: warn\n`);
    const prof = PROF ? ['--cpu-prof', '--cpu-prof-dir', PROF] : [];
    const own = extra.includes('--bench-no-recording') ? dataNoRec : data;
    // --expose-gc and GATEHOUSE_BENCH_GC=1: SIGUSR2 collects garbage (src/shared/benchgc.ts), for the RSS readings.
    const p = startProc(process.execPath, [...prof, '--expose-gc', BIN, 'serve', '--data', own, '--config', cfg, '--ssh-listen', `127.0.0.1:${port}`, '--web-listen', `127.0.0.1:${webPort}`, '--workers', WORKERS, ...extra], { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '', GATEHOUSE_BENCH_GC: '1' }, ownSession: true });
    // Moved before it starts its workers (a fresh node takes far longer to get there than this).
    if (iso && p.child.pid !== undefined) iso.server(p.child.pid);
    await p.waitFor(/ssh on/, 120_000);
    if (iso) for (const pid of processTree(p.child.pid!)) iso.server(pid);
    procs.push(p);
    return { port, proc: p };
  };
  return { data, keyFile, target, jump, ops, askpass, start };
}

// ---------------------------------------------------------------- helpers
const baseOpts = ['-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'IdentitiesOnly=yes'];

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: NodeJS.ReadableStream | null, sink?: (d: Buffer) => void): Promise<{ code: number | null; ms: number; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('setsid', ['-w', cmd, ...args], { env, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stdout!.on('data', (d: Buffer) => sink?.(d));
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    if (input && child.stdin) (input as NodeJS.ReadableStream).pipe(child.stdin);
    child.on('close', (code) => resolve({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6, stderr: err }));
  });
}

/** CPU time of a process, all its threads: user + kernel, and the kernel part on its own. */
function cpuTimes(pid: number): { total: number; sys: number } {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { total: (Number(f[11]) + Number(f[12])) / 100, sys: Number(f[12]) / 100 };
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN; };
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : NaN; };

// ---------------------------------------------------------------- main
/** The search scenario's own table: one row per query kind, one column per data-set size. */
async function searchTable(): Promise<unknown> {
  const out: Record<string, unknown> = {};
  // One store or both (BENCH_STORE); the same rows for each, SQLite's under the key it always had.
  for (const store of searchStores()) {
    const r = await searchTableOn(store);
    if (store === 'sqlite') Object.assign(out, r);
    else out[store] = r;
  }
  return out;
}

async function searchTableOn(store: 'sqlite' | 'postgres'): Promise<{ rows: unknown; firstQuery: unknown }> {
  const { rows, firstQuery } = await searchScenario(procs, log, store);
  const sizes = [...new Set(rows.map((r) => r.size))];
  const kinds = [...new Set(rows.map((r) => r.kind))];
  const header = [`search on ${store === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, through the web layer (median of 5, ms)`, ...sizes.map((n) => `${n.toLocaleString('en')} sessions`)];
  const table = [
    ...kinds.map((k) => [k, ...sizes.map((n) => rows.find((r) => r.kind === k && r.size === n)?.medianMs.toFixed(1) ?? '-')]),
    ['first query after start (rare word)', ...sizes.map((n) => firstQuery[n]?.toFixed(1) ?? '-')],
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${table.map(line).join('\n')}`);
  return { rows, firstQuery };
}

async function main() {
  if (ONLY.size === 1 && ONLY.has('search')) {
    const file = path.join(ROOT, 'bench', 'results.json');
    const prev = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown> : {};
    prev.search = await searchTable();
    fs.writeFileSync(file, JSON.stringify(prev, null, 2) + '\n');
    console.log('\nwritten: bench/results.json (search)');
    return;
  }
  const env0 = { ...process.env };
  const s = await setup();
  const gh = await s.start([]);
  const ghNoRec = await s.start(['--bench-no-recording']);
  let nextOp = 0;
  const op = () => s.ops[nextOp++ % s.ops.length]!;

  type Path = 'a' | 'b' | 'c' | 'd';
  const sshArgs = (p: Path, cipher: string | null, command: string[], who: Op, ghPort = gh.port): { args: string[]; env: NodeJS.ProcessEnv } => {
    const c = cipher ? ['-o', `Ciphers=${cipher}`] : [];
    const env = { ...env0, SSH_ASKPASS: s.askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0', GH_TOTP_SECRET: who.secret };
    switch (p) {
      case 'a': return { env, args: [...baseOpts, ...c, '-i', s.keyFile, '-p', String(s.target.port), `${LOGIN}@127.0.0.1`, ...command] };
      case 'b': return { env, args: [...baseOpts, ...c, '-i', s.keyFile, '-o', `ProxyCommand=ssh ${baseOpts.join(' ')} -i ${s.keyFile} -p ${s.jump.port} -W %h:%p ${LOGIN}@127.0.0.1`, '-p', String(s.target.port), `${LOGIN}@127.0.0.1`, ...command] };
      case 'c': return { env, args: [...baseOpts, ...c, '-i', who.key, '-p', String(ghPort), `${who.name}@127.0.0.1`, `${LOGIN}@target1`, ...command] };
      case 'd': return { env, args: [...baseOpts, ...c, '-i', who.key, '-o', `ProxyCommand=ssh ${baseOpts.join(' ')} -i ${who.key} -p ${ghPort} -W target1:22 ${who.name}@127.0.0.1`, `${LOGIN}@target1`, ...command] };
    }
  };

  const results: Record<string, unknown> = { isolation: iso?.describe ?? 'none' };
  const rows: string[][] = [];
  if (iso) log(iso.describe);

  // Bulk download and upload: ROUNDS rounds, each running every path once (interleaved, so a
  // slow spell of a shared machine hits every path alike); the median round counts.
  async function bulkOnce(kind: 'download' | 'upload', cipher: string | null, p: Path, ghPort: number, ghPid: number) {
    const who = op();
    const cmd = kind === 'download' ? [`head -c ${BYTES} /dev/zero`] : ['cat > /dev/null'];
    const a = sshArgs(p, cipher, cmd, who, ghPort);
    let got = 0;
    const cpu0 = cpuTimes(ghPid);
    let input: NodeJS.ReadableStream | null = null;
    if (kind === 'upload') input = spawn('head', ['-c', String(BYTES), '/dev/zero']).stdout;
    const r = await run('ssh', a.args, a.env, input, (d) => { got += d.length; });
    const cpu1 = cpuTimes(ghPid);
    if (r.code !== 0 || (kind === 'download' && got !== BYTES)) log(`${kind} ${p} failed: rc=${r.code} got=${got} ${r.stderr.trim()}`);
    return { mibs: (BYTES / 1024 / 1024) / (r.ms / 1000), cpuPerGiB: (cpu1.total - cpu0.total) / GIB, sysPerGiB: (cpu1.sys - cpu0.sys) / GIB };
  }
  async function bulk(kind: 'download' | 'upload', cipher: string | null, paths: Path[], servers = [{ port: gh.port, pid: gh.proc.child.pid! }]) {
    const samples: Record<string, { mibs: number[]; cpuPerGiB: number[]; sysPerGiB: number[] }> = {};
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0 && Date.now() > BULK_DEADLINE) break;
      for (const p of paths) {
        for (const [i, srv] of servers.entries()) {
          const key = servers.length > 1 ? `${p}${i}` : p;
          const x = await bulkOnce(kind, cipher, p, srv.port, srv.pid);
          samples[key] ??= { mibs: [], cpuPerGiB: [], sysPerGiB: [] };
          samples[key].mibs.push(x.mibs);
          samples[key].cpuPerGiB.push(x.cpuPerGiB);
          samples[key].sysPerGiB.push(x.sysPerGiB);
        }
      }
    }
    const out: Record<string, { mibs: number; cpuPerGiB?: number; sysPerGiB?: number; samples: number[] }> = {};
    for (const [k, v] of Object.entries(samples)) {
      out[k] = { mibs: median(v.mibs), samples: v.mibs.map((x) => Math.round(x)), ...(k.startsWith('c') || k.startsWith('d') ? { cpuPerGiB: median(v.cpuPerGiB), sysPerGiB: median(v.sysPerGiB) } : {}) };
    }
    return out;
  }

  for (const cipher of ONLY.has('download') ? [null, 'aes128-gcm@openssh.com'] : []) {
    const label = cipher ?? 'default';
    const d = await bulk('download', cipher, ['a', 'b', 'c', 'd']);
    results[`download_${label}`] = d;
    rows.push([`download ${GIB} GiB (${label})`, ...(['a', 'b', 'c', 'd'] as Path[]).map((p) => `${d[p]!.mibs.toFixed(0)} MiB/s`),
      `c/a ${(d.c!.mibs / d.a!.mibs).toFixed(2)}, c/b ${(d.c!.mibs / d.b!.mibs).toFixed(2)}, d/b ${(d.d!.mibs / d.b!.mibs).toFixed(2)}; gatehouse ${d.c!.cpuPerGiB!.toFixed(2)} CPU-s/GiB (c, ${d.c!.sysPerGiB!.toFixed(2)} of it in the kernel), ${d.d!.cpuPerGiB!.toFixed(2)} (d)`]);
    log(rows.at(-1)!.join(' | '));
  }
  if (ONLY.has('upload')) {
    const u = await bulk('upload', null, ['a', 'b', 'c', 'd']);
    results.upload_default = u;
    rows.push([`upload ${GIB} GiB (default)`, ...(['a', 'b', 'c', 'd'] as Path[]).map((p) => `${u[p]!.mibs.toFixed(0)} MiB/s`),
      `c/a ${(u.c!.mibs / u.a!.mibs).toFixed(2)}, c/b ${(u.c!.mibs / u.b!.mibs).toFixed(2)}, d/b ${(u.d!.mibs / u.b!.mibs).toFixed(2)}`]);
    log(rows.at(-1)!.join(' | '));
  }

  // Connection setup: `ssh … true`, interleaved, a fresh operator (fresh TOTP step) per gatehouse login.
  if (ONLY.has('setup')) {
    const times: Record<Path, number[]> = { a: [], b: [], c: [], d: [] };
    for (let i = 0; i < SETUP_RUNS && Date.now() < DEADLINE; i++) {
      for (const p of ['a', 'b', 'c', 'd'] as Path[]) {
        const a = sshArgs(p, null, ['true'], op());
        const r = await run('ssh', a.args, a.env);
        if (r.code === 0) times[p].push(r.ms); else log(`setup ${p} failed: ${r.stderr.trim()}`);
      }
    }
    const m = Object.fromEntries((['a', 'b', 'c', 'd'] as Path[]).map((p) => [p, median(times[p])])) as Record<Path, number>;
    results.setup_ms = { median: m, runs: times };
    rows.push([`connection setup (median of ${SETUP_RUNS})`, ...(['a', 'b', 'c', 'd'] as Path[]).map((p) => `${m[p].toFixed(0)} ms`),
      `c/a ${(m.c / m.a).toFixed(2)}, c/b ${(m.c / m.b).toFixed(2)}, d/b ${(m.d / m.b).toFixed(2)}`]);
    log(rows.at(-1)!.join(' | '));
  }

  // Keystroke echo in a pty: `script` gives ssh a terminal; remote `cat` under a pty echoes each key.
  if (ONLY.has('echo')) {
    const lat: Record<'a' | 'c', number[]> = { a: [], c: [] };
    for (const p of ['a', 'c'] as const) {
      const a = sshArgs(p, null, ['-tt', 'stty raw -echo; cat'], op());
      // -tt must come before the destination: rebuild with it in front.
      const args = ['-tt', ...a.args.filter((x) => x !== '-tt').filter((x) => x !== 'stty raw -echo; cat'), 'stty raw -echo; cat'];
      // The local pty is put in raw mode without echo before ssh starts, so every echo measured is
      // the remote one; each keystroke is a distinct letter, and we wait for that letter.
      const child: ChildProcess = detachedClient(spawn('script', ['-qfec', `stty raw -echo; exec ssh ${args.map((x) => `'${x.replace(/'/g, `'\\''`)}'`).join(' ')}`, '/dev/null'], { env: a.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true }));
      let buf = '';
      let want = '';
      let waiting: (() => void) | null = null;
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        if (waiting && want && buf.includes(want)) { const w = waiting; waiting = null; w(); }
      });
      const echo = (ch: string, ms: number) => new Promise<boolean>((resolve) => {
        buf = '';
        want = ch;
        const t = setTimeout(() => { waiting = null; resolve(false); }, ms);
        waiting = () => { clearTimeout(t); resolve(true); };
        child.stdin!.write(ch);
      });
      // Wait until the remote `cat` answers, then time each keystroke.
      for (let warm = 0; warm < 100; warm++) if (await echo('@', 200)) break;
      for (let i = 0; i < KEYS + 20; i++) {
        const ch = String.fromCharCode(97 + (i % 26));
        const t0 = process.hrtime.bigint();
        if (!(await echo(ch, 2000))) { log(`echo ${p}: key ${i} timed out`); break; }
        if (i >= 20) lat[p].push(Number(process.hrtime.bigint() - t0) / 1e6); // the first 20 warm the path up
      }
      child.kill('SIGKILL');
    }
    results.echo_ms = { a: { p50: median(lat.a), p99: pct(lat.a, 0.99) }, c: { p50: median(lat.c), p99: pct(lat.c, 0.99) } };
    rows.push([`keystroke echo, ${KEYS} keys (p50 / p99)`, `${median(lat.a).toFixed(2)} / ${pct(lat.a, 0.99).toFixed(2)} ms`, '-', `${median(lat.c).toFixed(2)} / ${pct(lat.c, 0.99).toFixed(2)} ms`, '-',
      `added p50 ${(median(lat.c) - median(lat.a)).toFixed(2)} ms`]);
    log(rows.at(-1)!.join(' | '));
  }

  // Recording cost: the same download with the recorder on (gh) and dropped (ghNoRec).
  if (ONLY.has('recording')) {
    const r = await bulk('download', null, ['c'], [{ port: gh.port, pid: gh.proc.child.pid! }, { port: ghNoRec.port, pid: ghNoRec.proc.child.pid! }]);
    const on = r.c0!;
    const off = r.c1!;
    results.recording_cost = { on, off, ratio: on.mibs / off.mibs };
    rows.push(['recording cost (download, c)', '-', '-', `on ${on.mibs.toFixed(0)} / off ${off.mibs.toFixed(0)} MiB/s`, '-', `ratio ${(on.mibs / off.mibs).toFixed(2)}; gatehouse ${on.cpuPerGiB!.toFixed(2)} / ${off.cpuPerGiB!.toFixed(2)} CPU-s/GiB`]);
    log(rows.at(-1)!.join(' | '));
  }

  // SFTP put and get of one file, OpenSSH -J against gatehouse -J, and gatehouse with its file audit
  // (SHA-256 per file, audit events, files table) on and off (the --bench-no-recording server).
  if (ONLY.has('sftp')) {
    const size = Math.round(SFTP_MIB * 1024 * 1024);
    const blob = path.join(dir, 'sftp-blob');
    execFileSync('sh', ['-c', `head -c ${size} /dev/urandom > '${blob}'`]);
    const sftpOnce = async (kind: 'put' | 'get', p: 'b' | 'd', ghPort: number) => {
      const who = op();
      const a = sshArgs(p, null, [], who, ghPort);
      // sshArgs gives ssh's arguments: sftp takes the same options, with -P for the port and no command.
      const args = a.args.map((x) => (x === '-p' ? '-P' : x));
      const there = path.join(dir, `sftp-${kind}-${p}-${ghPort}`);
      const batch = kind === 'put' ? `put ${blob} ${there}\n` : `get ${blob} ${there}\n`;
      const r = await run('sftp', ['-b', '-', ...args], a.env, Readable.from([batch]));
      const ok = r.code === 0 && fs.existsSync(there) && fs.statSync(there).size === size;
      fs.rmSync(there, { force: true });
      if (!ok) log(`sftp ${kind} ${p} failed: rc=${r.code} ${r.stderr.trim()}`);
      return (size / 1024 / 1024) / (r.ms / 1000);
    };
    const servers: [string, 'b' | 'd', number][] = [['b', 'b', gh.port], ['d', 'd', gh.port], ['d-off', 'd', ghNoRec.port]];
    const out: Record<string, Record<string, number>> = {};
    for (const kind of ['put', 'get'] as const) {
      const samples: Record<string, number[]> = {};
      for (let round = 0; round < ROUNDS; round++) {
        for (const [key, p, port] of servers) (samples[key] ??= []).push(await sftpOnce(kind, p, port));
      }
      out[kind] = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
      const x = out[kind]!;
      rows.push([`sftp ${kind} ${SFTP_MIB} MiB`, '-', `${x.b!.toFixed(0)} MiB/s`, '-', `${x.d!.toFixed(0)} MiB/s`,
        `d/b ${(x.d! / x.b!).toFixed(2)}; file audit on ${x.d!.toFixed(0)} / off ${x['d-off']!.toFixed(0)} MiB/s (ratio ${(x.d! / x['d-off']!).toFixed(2)})`]);
      log(rows.at(-1)!.join(' | '));
    }
    results.sftp = out;
  }

  // Concurrency: many idle interactive sessions through gatehouse, then some of them typing.
  if (ONLY.has('concurrency') && Date.now() < DEADLINE - 120_000) {
    const pid = gh.proc.child.pid!;
    // With --workers the sessions live in the workers: the primary and every process under it count.
    const rss = () => processTree(pid).reduce((sum, p) => sum + rssMiB(p), 0);
    const cpu = () => processTree(pid).reduce((sum, p) => sum + cpuSeconds(p), 0);
    // Garbage left by the start (or by the sessions' logins) is not memory the sessions hold: both
    // readings are taken once V8 has collected it (its idle-time GC) and the RSS stopped moving.
    const collect = () => { for (const p of processTree(pid)) { try { process.kill(p, 'SIGUSR2'); } catch { /* gone */ } } };
    const before = await settledRss(rss, collect);
    const clients: ChildProcess[] = [];
    const cpu0 = cpu();
    const opening0 = Date.now();
    // Every session is its own SSH connection through gatehouse (its own operator, so its own TOTP
    // login), with a pty and an upstream session to the target; opened 8 at a time.
    const openOne = (p: Path = 'c'): Promise<ChildProcess | null> => new Promise((resolve) => {
      const a = sshArgs(p, null, ['stty raw -echo; echo ready; cat'], op());
      const args = ['-tt', ...a.args];
      const c = detachedClient(spawn('script', ['-qfec', `stty raw -echo; exec ssh ${args.map((x) => `'${x.replace(/'/g, `'\\''`)}'`).join(' ')}`, '/dev/null'], { env: a.env, stdio: ['pipe', 'pipe', 'ignore'], detached: true }));
      let out = '';
      const timer = setTimeout(() => { c.kill('SIGKILL'); resolve(null); }, 20_000);
      const onData = (d: Buffer) => { out += d.toString(); if (out.includes('ready')) { clearTimeout(timer); c.stdout!.off('data', onData); resolve(c); } };
      c.stdout!.on('data', onData);
    });
    for (let i = 0; i < IDLE && Date.now() < DEADLINE - 90_000; i += 8) {
      const batch = await Promise.all(Array.from({ length: Math.min(8, IDLE - i) }, () => openOne()));
      for (const c of batch) if (c) clients.push(c);
      if ((i / 8) % 10 === 9) log(`concurrency: ${clients.length} open after ${((Date.now() - opening0) / 1000).toFixed(0)} s, gatehouse CPU ${((cpu() - cpu0) * 1000 / Math.max(1, clients.length)).toFixed(0)} ms/session`);
    }
    const openingS = (Date.now() - opening0) / 1000;
    const cpuPerSession = (cpu() - cpu0) * 1000 / Math.max(1, clients.length);
    const withSessions = await settledRss(rss, collect);
    // The baseline under the same load: a few sessions straight to the target (path a) type along
    // with the gatehouse ones. What they see is the machine (every client, target and pty on the
    // same cores); what the gatehouse sessions see beyond it is gatehouse's share.
    const direct = (await Promise.all(Array.from({ length: TYPING_DIRECT }, () => openOne('a')))).filter((c): c is ChildProcess => c !== null);
    // What the open sessions cost while nobody types (timers, keepalives), then while 200 type:
    // the machine is shared with every client and target process, so gatehouse's share is shown.
    const idle0 = cpu();
    await new Promise((r) => setTimeout(r, 5000));
    const idleCpuPct = (cpu() - idle0) / 5 * 100;
    const typing0 = cpu();
    const typingT0 = Date.now();
    const lat: number[] = [];
    const latDirect: number[] = [];
    const typers = clients.slice(0, TYPING);
    const endAt = Date.now() + 10_000;
    await Promise.all([...typers.map((c) => [c, lat] as const), ...direct.map((c) => [c, latDirect] as const)].map(async ([c, lat]) => {
      let pending: ((v: void) => void) | null = null;
      c.stdout!.on('data', () => { const p = pending; pending = null; p?.(); });
      // random: each typist starts at its own moment in the first 100 ms, as people do; step: all at
      // once, so the keystrokes arrive in waves (the figures before 2026-11-30 were taken so).
      if (TYPING_PHASE === 'random') await new Promise((r) => setTimeout(r, Math.random() * 100));
      while (Date.now() < endAt) {
        const t0 = process.hrtime.bigint();
        const got = new Promise<void>((r) => { pending = r; });
        c.stdin!.write('k');
        await Promise.race([got, new Promise((r) => setTimeout(r, 2000))]);
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        await new Promise((r) => setTimeout(r, 100)); // 10 keys/s
      }
    }));
    const typingCpuPct = (cpu() - typing0) / ((Date.now() - typingT0) / 1000) * 100;
    const perSession = (withSessions - before) / Math.max(1, clients.length);
    results.concurrency = {
      idle: clients.length, typing: TYPING, rssBeforeMiB: before, rssWithSessionsMiB: withSessions, perSessionMiB: perSession,
      openingSeconds: openingS, cpuMsPerSession: cpuPerSession, echoP99: pct(lat, 0.99), echoP50: median(lat),
      gatehouseCpuIdlePct: idleCpuPct, gatehouseCpuTypingPct: typingCpuPct,
      direct: { typing: direct.length, echoP50: median(latDirect), echoP99: pct(latDirect, 0.99) }, typingPhase: TYPING_PHASE,
    };
    rows.push([`concurrency: ${clients.length} idle, ${TYPING} typing 10 keys/s${TYPING_PHASE === 'random' ? ' (random phase)' : ''} (+${direct.length} direct)`, `echo p50 ${median(latDirect).toFixed(1)} ms, p99 ${pct(latDirect, 0.99).toFixed(1)} ms`, '-', `${perSession.toFixed(2)} MiB/session`, '-',
      `echo p50 ${median(lat).toFixed(1)} ms, p99 ${pct(lat, 0.99).toFixed(1)} ms; opened in ${openingS.toFixed(0)} s, gatehouse ${cpuPerSession.toFixed(0)} CPU-ms/session, gatehouse CPU ${idleCpuPct.toFixed(0)} % of a core idle, ${typingCpuPct.toFixed(0)} % typing`]);
    log(rows.at(-1)!.join(' | '));
    for (const c of [...clients, ...direct]) c.kill('SIGKILL');
  }

  // Revocation: live sessions revoked one by one from the CLI; ms from the CLI's exit to the client's exit.
  if (ONLY.has('revocation')) {
    const times: number[] = [];
    for (let i = 0; i < REVOKE && Date.now() < DEADLINE - 30_000; i++) {
      const who = op();
      const a = sshArgs('c', null, ['echo started; sleep 60'], who);
      let started!: () => void;
      const ready = new Promise<void>((r) => { started = r; });
      const done = run('ssh', a.args, a.env, null, (d) => { if (d.toString().includes('started')) started(); });
      await Promise.race([ready, new Promise((r) => setTimeout(r, 15_000))]);
      execFileSync(process.execPath, [BIN, 'user', 'disable', who.name, '--data', s.data], { stdio: 'ignore' });
      const t0 = performance.now();
      const r = await done;
      if (!/access revoked/.test(r.stderr)) log(`revocation ${i}: the session did not end by revocation: rc=${r.code} ${r.stderr.trim()}`);
      else times.push(performance.now() - t0);
    }
    results.revocation_ms = { median: median(times), worst: Math.max(...times), runs: times };
    rows.push([`revocation, ${times.length} sessions (CLI exit → client exit)`, '-', '-', `median ${median(times).toFixed(0)} ms, worst ${Math.max(...times).toFixed(0)} ms`, '-', '']);
    log(rows.at(-1)!.join(' | '));
  }

  // Machine, versions, ciphers negotiated (from `ssh -v` of one more connection per path).
  // Asynchronous on purpose: a blocked event loop stops draining the sshd logs, and an sshd that
  // cannot write its log stops answering (seen with 1000 sessions closing at once).
  const cipherOf = async (p: Path) => {
    const a = sshArgs(p, null, ['true'], op());
    const r = await run('ssh', ['-v', ...a.args.map((x) => (x === 'LogLevel=ERROR' ? 'LogLevel=VERBOSE' : x))], a.env);
    return [...r.stderr.matchAll(/kex: server->client cipher: (\S+)/g)].map((m) => m[1]).join(' / ') || '?';
  };
  const sshV = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
  const machine = {
    cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? '?', memGiB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version, openssh: `${sshV.stdout}${sshV.stderr}`.trim(),
    ssh2: (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/ssh2/package.json'), 'utf8')) as { version: string }).version,
    ciphers: { direct: await cipherOf('a'), gatehouseOperatorHop: await cipherOf('c') },
  };
  results.machine = machine;
  results.workers = WORKERS;
  results.date = new Date().toISOString();

  const header = ['scenario', '(a) direct', '(b) OpenSSH -J', '(c) gatehouse cmd', '(d) gatehouse -J', 'ratios / notes'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  console.log(`machine: ${machine.cores} cores, ${machine.cpu}, ${machine.memGiB} GiB; node ${machine.node}; ${machine.openssh}; ssh2 ${machine.ssh2} (patched)`);
  console.log(`gatehouse: serve --workers ${WORKERS}${WORKERS === '1' ? ' (one process)' : ' (a primary and its workers; BENCH_WORKERS)'}`);
  console.log(`ciphers negotiated by default: direct ${machine.ciphers.direct}; gatehouse, operator hop ${machine.ciphers.gatehouseOperatorHop} (gatehouse → target: aes128-gcm, ssh2's first choice)`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const r of rows) console.log(line(r));
  if (ONLY.has('search')) results.search = await searchTable();
  fs.writeFileSync(path.join(ROOT, 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log('\nwritten: bench/results.json');
}

let cleaned: Promise<void> | null = null;
const cleanup = () => cleaned ??= (async () => {
  for (const pid of clientGroups) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
  for (const p of procs.reverse()) await p.stop().catch(() => undefined);
  await iso?.release();
  fs.rmSync(dir, { recursive: true, force: true });
})();
// Ctrl-C: the servers and clients are in sessions of their own and get no signal from the terminal.
// on, not once: a Ctrl-C reaches this process twice (from the terminal, and relayed by tsx).
process.on('SIGINT', () => { void cleanup().finally(() => process.exit(130)); });

main()
  .catch((err) => { console.error(err); process.exitCode = 1; })
  .finally(cleanup);

/** A process and every process under it (the primary of `serve --workers N` and its workers). */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch { /* gone meanwhile */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { out.push(p); for (const c of children.get(p) ?? []) walk(c); };
  walk(root);
  return out;
}

/** CPU seconds (user + kernel) of a process, 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    return cpuTimes(pid).total;
  } catch {
    return 0;
  }
}

/**
 * RSS after a full GC in every gatehouse process (`collect`: SIGUSR2, see src/shared/benchgc.ts),
 * once it stopped moving: collected and read every 3 s until two readings agree within 1 % (at most
 * 15 readings; the last one otherwise). A reading taken while V8 still held the start's garbage made
 * the per-session figure come out negative (the "before" reading was the larger).
 */
async function settledRss(read: () => number, collect: () => void): Promise<number> {
  collect();
  await new Promise((r) => setTimeout(r, 1000));
  let prev = read();
  for (let i = 0; i < 14; i++) {
    collect();
    await new Promise((r) => setTimeout(r, 3000));
    const cur = read();
    if (Math.abs(cur - prev) <= Math.max(0.5, prev * 0.01)) return cur;
    prev = cur;
  }
  log('RSS did not settle within 45 s: the last reading is used');
  return prev;
}

function rssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}
