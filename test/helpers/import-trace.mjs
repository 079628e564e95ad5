// Preloaded with `node --import` by test/unit/cli/startup-imports.test.ts: writes every module the
// process loads to the file named by GATEHOUSE_TEST_IMPORT_TRACE, one per line. ES modules are seen by
// a load hook (they may load from another thread's view, so the hook itself appends); CommonJS ones,
// including those required lazily with createRequire, are read from the require cache at exit.
import fs from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.GATEHOUSE_TEST_IMPORT_TRACE;
if (out) {
  register(new URL('./import-trace-hooks.mjs', import.meta.url), { data: { out } });
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    fs.appendFileSync(out, Object.keys(cache).map((f) => `cjs ${f}\n`).join(''));
  });
}
