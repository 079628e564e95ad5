// The CLI's run() in a worker thread, for test/helpers/cli.ts's in-process ghOk: the built code
// (dist/, as bin/gatehouse.js runs it), loaded once per test file instead of once per command.
import { Readable, Writable } from 'node:stream';
import { parentPort } from 'node:worker_threads';

const { run } = await import(new URL('../../dist/cli/main.js', import.meta.url).href);

/** What keeps this thread's event loop alive, by type (unref'd timers and handles are not listed). */
function holding() {
  const n = new Map();
  for (const t of process.getActiveResourcesInfo()) n.set(t, (n.get(t) ?? 0) + 1);
  return n;
}

/**
 * What the command left running that would keep the real binary from exiting (main() only sets
 * process.exitCode): a pool, socket or timer not closed. Closes already under way get 500 ms.
 */
async function leftRunning(before) {
  for (let waited = 0; ; waited += 10) {
    const after = holding();
    const left = [...after].filter(([t, k]) => k > (before.get(t) ?? 0)).map(([t, k]) => `${t} x${k - (before.get(t) ?? 0)}`);
    if (left.length === 0 || waited >= 500) return left;
    await new Promise((r) => setTimeout(r, 10).unref());
  }
}

function collector() {
  const chunks = [];
  const stream = new Writable({ write(chunk, _enc, cb) { chunks.push(Buffer.from(chunk)); cb(); } });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

// A worker that dies mid-command (an uncaught error) wakes the waiting test at once.
let current = null;
process.on('exit', () => {
  if (!current) return;
  Atomics.store(current, 0, 2);
  Atomics.notify(current, 0);
});

parentPort.on('message', async ({ args, env, input, flag, port }) => {
  current = new Int32Array(flag);
  const out = collector();
  const err = collector();
  let reply;
  try {
    // Commands that read process.env themselves see the same environment as through `env`.
    for (const k of Object.keys(process.env)) delete process.env[k];
    Object.assign(process.env, env);
    const before = holding();
    const code = await run(args, { env, stdin: Readable.from([Buffer.from(input)]), stdout: out.stream, stderr: err.stream });
    const left = await leftRunning(before);
    reply = left.length > 0
      ? { error: `the command left ${left.join(', ')} running: the gatehouse binary would not exit` }
      : { code, stdout: out.text(), stderr: err.text() };
  } catch (e) {
    reply = { error: e instanceof Error ? e.stack ?? e.message : String(e) };
  }
  port.postMessage(reply);
  port.close();
  const f = current;
  current = null;
  Atomics.store(f, 0, 1);
  Atomics.notify(f, 0);
});
