import { isMainThread } from 'node:worker_threads';

/**
 * How long libgomp's idle threads spin before they sleep, unless the user chose (GOMP_SPINCOUNT or
 * OMP_WAIT_POLICY in the environment). libgomp's default spins ~300,000 iterations at every barrier:
 * alone on the cores that costs nothing, but beside any other busy process (a second run, a benchmark,
 * the data workers of a daemon) a team member waits for a descheduled partner for a whole time slice,
 * and measured resnet20 steps at density 0.1 took 1,110–1,240 ms instead of ~230 (a fair half of the
 * 113 ms quiet step). 10,000 iterations measured: 246–258 ms beside another run, and within 1% of the
 * default alone (113 vs 112–113 ms); OMP_WAIT_POLICY=passive: 200–229 ms beside, but 10–19% slower alone.
 */
export const DEFAULT_GOMP_SPINCOUNT = '10000';

/**
 * Sets GOMP_SPINCOUNT in the process environment if the user set neither variable. libgomp reads it
 * once, when it is first loaded (with the native addon), so this must run before that. Only the main
 * thread can change the process environment (a worker thread's process.env is a private copy), so
 * entry points that load the addon in a worker call this on the main thread first.
 */
export function defaultOpenMpSpinning(env: NodeJS.ProcessEnv = process.env): void {
  if (!isMainThread && env === process.env) return;
  if (env.GOMP_SPINCOUNT === undefined && env.OMP_WAIT_POLICY === undefined) env.GOMP_SPINCOUNT = DEFAULT_GOMP_SPINCOUNT;
}
