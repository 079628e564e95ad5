import { afterAll } from 'vitest';
import { removeTempDirs } from './helpers/cli.js';
import { stopAll } from './helpers/proc.js';
import { killAllTmux } from './helpers/tmux.js';

// Registered before any test file's own hooks, so it runs after them (hooks unwind as a stack):
// whatever a file started and did not stop, also when a test failed half-way, ends here, by PID,
// and only then are its temporary directories removed.
afterAll(async () => {
  await stopAll();
  killAllTmux();
  removeTempDirs();
});
