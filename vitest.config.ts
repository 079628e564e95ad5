import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // e2e suites start real sshd and gatehouse processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    // One temp root per run, removed at the end; each file's dirs and processes go when it ends.
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup.ts'],
  },
});
