#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
import('../dist/cli/main.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    process.stderr.write('gatehouse: not built yet. Run `npm ci` (or `npm run build`) in the checkout first.\n');
  } else {
    process.stderr.write(`gatehouse: ${err && err.message ? err.message : err}\n`);
  }
  process.exit(1);
});
