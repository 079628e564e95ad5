import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, tempDir } from '../helpers/cli.js';
import { freePort, startProc } from '../helpers/proc.js';

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** serve on a terminal (util-linux `script` gives it a pty): readable lines, unless log.format says json. */
async function serveOnTty(config: string): Promise<string> {
  const dir = tempDir();
  const cfg = path.join(dir, 'gatehouse.yaml');
  fs.writeFileSync(cfg, config);
  const cmd = [process.execPath, BIN, 'serve', '--config', cfg, '--data', path.join(dir, 'data'),
    '--ssh-listen', `127.0.0.1:${await freePort()}`, '--web-listen', `127.0.0.1:${await freePort()}`].map(shellQuote).join(' ');
  const p = startProc('script', ['-qec', `exec ${cmd}`, '/dev/null'], { env: { GATEHOUSE_DATA: '', GATEHOUSE_CONFIG: '', TERM: 'dumb' } });
  await p.waitFor(/gatehouse started/, 30_000);
  const out = p.stdout();
  await p.stop('SIGTERM');
  return out;
}

describe('log format', () => {
  it('on a terminal, serve prints readable lines (pino-pretty)', async () => {
    const out = await serveOnTty('log: { level: info }\n');
    expect(out).toMatch(/INFO.*gatehouse started/);
    expect(out).not.toMatch(/^\{"level"/m);
  }, 60_000);

  it('log.format: json forces JSON lines even on a terminal', async () => {
    const out = await serveOnTty('log: { format: json }\n');
    expect(out).toMatch(/\{"level":"info".*"msg":"gatehouse started"/);
  }, 60_000);
});
