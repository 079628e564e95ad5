// The CLI's run() in a worker thread, for test/helpers/cli.ts's in-process ghOk: the built code
// (dist/, as bin/gatehouse.js runs it), loaded once per test file instead of once per command.
import { Readable, Writable } from 'node:stream';
import { parentPort } from 'node:worker_threads';

const { run } = await import(new URL('../../dist/cli/main.js', import.meta.url).href);

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
    const code = await run(args, { env, stdin: Readable.from([Buffer.from(input)]), stdout: out.stream, stderr: err.stream });
    reply = { code, stdout: out.text(), stderr: err.text() };
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
