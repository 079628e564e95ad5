import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // e2e suites start real sshd, gatehouse and PostgreSQL processes and spend most of their time
    // waiting on them (TOTP steps, timeouts, heartbeats): three files at a time keep two cores busy
    // (with two, the run took 18 min of the 20-minute CI budget; tests hold no timing thresholds).
    maxWorkers: 3,
    // One temp root per run, removed at the end; each file's dirs and processes go when it ends.
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup.ts'],
  },
});
