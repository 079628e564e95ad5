import { afterAll } from 'vitest';
import { removeTempDirs } from './helpers/cli.js';
import { stopAll } from './helpers/proc.js';
import { killAllTmux } from './helpers/tmux.js';

// Registered before any test file's own hooks, so it runs after them (hooks unwind as a stack):
// whatever a file started and did not stop, also when a test failed half-way, ends here, by PID,
// and only then are its temporary directories removed.
// `serve` runs one worker per core by default; the e2e files start many servers on two cores, so
// they run one process each unless a test asks for workers (--workers, which wins over this).
process.env.GATEHOUSE_WORKERS ??= '1';

afterAll(async () => {
  await stopAll();
  killAllTmux();
  removeTempDirs();
});
