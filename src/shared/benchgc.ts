/**
 * For `npm run bench` only: its memory-per-session figure needs the RSS of a process whose garbage
 * has been collected, before and after the sessions open (a reading with the start's garbage still
 * in the heap made the figure come out negative). When node runs with --expose-gc and
 * GATEHOUSE_BENCH_GC=1 (the bench sets both), SIGUSR2 runs a full collection. Otherwise nothing is
 * installed: a production server never exposes gc nor changes what SIGUSR2 does.
 */
export function installBenchGc(env: NodeJS.ProcessEnv = process.env): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (env.GATEHOUSE_BENCH_GC !== '1' || typeof gc !== 'function') return false;
  process.on('SIGUSR2', () => gc());
  return true;
}
