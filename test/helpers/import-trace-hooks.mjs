// The loader hooks of import-trace.mjs (they run in the hooks thread).
import fs from 'node:fs';

let out;

export function initialize(data) {
  out = data.out;
}

export async function load(url, context, nextLoad) {
  fs.appendFileSync(out, `esm ${url}\n`);
  return nextLoad(url, context);
}
