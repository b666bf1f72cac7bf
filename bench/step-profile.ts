/**
 * Where one training step's time goes (`npm run bench:step -- MODEL DENSITY [MODE] [THREADS]`): the
 * benchmarks' step (bench/bench-step.ts) timed over 20 steps after 5 of warm-up, with every native addon
 * call wrapped in a timer. Prints ms per step, the native functions' share by function, and the rest
 * (JavaScript: tfjs's engine and tape, the optimiser's bookkeeping). MODE is the sparse compute mode
 * (auto, on, off; default auto). A tool for finding the next thing to speed up, not a benchmark against
 * the peer (that is bench:train).
 */
import { selectBackend } from '../src/compute/backend';
import { requireNativeAddon } from '../src/compute/native-addon';
import { SPARSE_COMPUTE_MODES, setSparseComputeMode, type SparseComputeMode } from '../src/compute/sparse-selection';
import { MODEL_NAMES, type ModelName } from '../src/models/zoo';
import { benchStep, BENCH_BATCH } from './bench-step';

async function main(): Promise<void> {
  const [model = 'resnet20', densityArg = '0.1', mode = 'auto', threadsArg = '2'] = process.argv.slice(2);
  if (!(MODEL_NAMES as readonly string[]).includes(model)) throw new Error(`bench:step: unknown model '${model}' (${MODEL_NAMES.join(', ')})`);
  if (!(SPARSE_COMPUTE_MODES as readonly string[]).includes(mode)) throw new Error(`bench:step: mode must be one of ${SPARSE_COMPUTE_MODES.join(', ')}, got '${mode}'`);
  const density = Number(densityArg);
  if (!(density > 0 && density <= 1)) throw new Error(`bench:step: density must be in (0, 1], got '${densityArg}'`);
  const compute = await selectBackend('native', { threads: Number(threadsArg) });
  setSparseComputeMode(mode as SparseComputeMode);
  const kernels = requireNativeAddon();
  const addon = kernels as unknown as Record<string, unknown>;
  const untimed = new Set(['setPhaseTiming', 'phaseTimes']);
  const times = new Map<string, { ms: number; calls: number }>();
  for (const [name, f] of Object.entries(addon)) {
    if (typeof f !== 'function' || untimed.has(name)) continue;
    addon[name] = (...args: unknown[]) => {
      const start = performance.now();
      const result = (f as (...a: unknown[]) => unknown)(...args);
      const entry = times.get(name) ?? { ms: 0, calls: 0 };
      entry.ms += performance.now() - start;
      entry.calls++;
      times.set(name, entry);
      return result;
    };
  }
  const bench = benchStep(compute, model as ModelName, density);
  try {
    for (let i = 0; i < 5; i++) bench.step();
    times.clear();
    kernels.setPhaseTiming(true);
    const steps = 20;
    const faults = process.resourceUsage().minorPageFault;
    const start = performance.now();
    for (let i = 0; i < steps; i++) bench.step();
    const ms = (performance.now() - start) / steps;
    const faultsPerStep = (process.resourceUsage().minorPageFault - faults) / steps;
    let native = 0;
    for (const t of times.values()) native += t.ms / steps;
    console.log(`${model} density ${density}, sparse compute ${mode}, ${threadsArg} threads: ${ms.toFixed(1)} ms per step (${((BENCH_BATCH * 1000) / ms).toFixed(0)} img/s)`);
    console.log(`  native ${native.toFixed(1)} ms, rest (JavaScript) ${(ms - native).toFixed(1)} ms; ${faultsPerStep.toFixed(0)} page faults per step (first touches of fresh memory)`);
    for (const [name, t] of [...times].sort((a, b) => b[1].ms - a[1].ms)) {
      console.log(`  ${name.padEnd(28)} ${(t.ms / steps).toFixed(2).padStart(7)} ms  ${String(t.calls / steps).padStart(4)} calls`);
    }
    kernels.setPhaseTiming(false);
    const phases = Object.entries(kernels.phaseTimes()).sort((a, b) => b[1].ms - a[1].ms);
    if (phases.length) {
      console.log('  sparse kernels by phase (inside parallel regions: thread 0):');
      for (const [name, t] of phases) console.log(`    ${name.padEnd(26)} ${(t.ms / steps).toFixed(2).padStart(7)} ms`);
    }
  } finally {
    bench.dispose();
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
