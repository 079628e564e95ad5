import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireServeLock } from '../../../src/datadir/lock.js';
import { ROOT, tempDir } from '../../helpers/cli.js';

/** Try the lock from another process (a kernel lock is per process): its exit line says what happened. */
function tryFromChild(file: string): string {
  const script = `import { acquireServeLock } from ${JSON.stringify(path.join(ROOT, 'src/datadir/lock.ts'))};
    try { acquireServeLock(${JSON.stringify(file)}, 0, { pid: 4242, host: 'other' }); console.log('acquired'); } catch (e) { console.log(e.message); }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, TSX_DISABLE_CACHE: '1' } });
  return (r.stdout + r.stderr).trim();
}

describe('the data directory lock', () => {
  it('is held while the holder runs, names it, and is free again after release', () => {
    const file = path.join(tempDir(), 'serve.lock');
    const lock = acquireServeLock(file, Date.UTC(2026, 0, 2), { pid: 1234, host: 'bastion1' });
    expect(tryFromChild(file)).toBe(`another gatehouse server (pid 1234 on bastion1, running since 2026-01-02T00:00:00.000Z) holds the data directory lock ${file}`);
    lock.release();
    expect(tryFromChild(file)).toBe('acquired');
    // The child exited without releasing (as after kill -9): the kernel dropped its lock.
    const again = acquireServeLock(file, 0);
    again.release();
  });
});
