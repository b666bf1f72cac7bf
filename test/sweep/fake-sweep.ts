import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { MonoTypeOperatorFunction } from 'rxjs';
import { configHash, resolveConfig, type ConfigOverride, type RunConfig } from '../../src/cli/config';
import type { SweepJob, TrainOutcome } from '../../src/cli/wiring';
import type { ProgressOptions } from '../../src/cli/progress';
import { writeSummary, type RunSummary, type StageResult } from '../../src/sinks/summary';
import { sweepRunName } from '../../src/sweep/comparison';
import type { RunOne } from '../../src/sweep/run-sweep';
import type { TrainEvent } from '../../src/train/events';
import { captureIo } from '../helpers/cli-io';

/** One run of a fake sweep: label (method unless given), density, seed and extra config fields. */
export interface RunSpec {
  readonly method: string;
  readonly density: number;
  readonly seed: number;
  readonly label?: string;
  readonly set?: Readonly<Record<string, string>>;
}

/** Resolved configs as `cigl sweep` makes them: runs under `dir`, named <label>-d<density>-s<seed>. */
export function sweepConfigs(dir: string, specs: readonly RunSpec[]): RunConfig[] {
  return specs.map((s) => {
    const overrides: ConfigOverride[] = [
      { path: 'train.epochs', raw: '4', origin: 'test' },
      ...Object.entries(s.set ?? {}).map(([p, raw]) => ({ path: p, raw, origin: 'test' })),
      { path: 'sparse.method', raw: s.method, origin: 'test' },
      { path: 'sparse.density', raw: String(s.density), origin: 'test' },
      { path: 'seed', raw: String(s.seed), origin: 'test' },
      { path: 'output.runsDir', raw: dir, origin: 'test' },
      { path: 'output.runName', raw: sweepRunName(s.label ?? s.method, s.density, s.seed), origin: 'test' },
    ];
    return resolveConfig({ overrides, cwd: dir });
  });
}

export function sweepJob(dir: string, runs: readonly RunConfig[], stop: SweepJob["stop"] = new AbortController().signal, command?: string) {
  const io = captureIo(dir);
  const progressCalls: (ProgressOptions | undefined)[] = [];
  const job: SweepJob = {
    dir,
    runs,
    stop,
    io,
    progress: (options?: ProgressOptions): MonoTypeOperatorFunction<TrainEvent> => {
      progressCalls.push(options);
      return (source) => source;
    },
    ...(command ? { command } : {}),
  };
  return { job, io, progressCalls };
}

/** Headline numbers of a fake run, by (label, density, seed). */
export type Numbers = (config: RunConfig) => { accuracy: number; ece15: number; ece10: number; nll?: number; brier?: number; wallTimeMs?: number };

/** A summary as the train job writes it: a stage per model, a temperature-scaled stage last. */
export function fakeSummary(config: RunConfig, n: ReturnType<Numbers>): RunSummary {
  const dir = path.join(config.output.runsDir, config.output.runName!);
  const stage = (name: string, shift: number, temperature?: number): StageResult => ({
    stage: name,
    accuracy: n.accuracy,
    ece: { '15': n.ece15 + shift, '10': n.ece10 + shift },
    ...(n.nll !== undefined ? { nll: n.nll + shift } : {}),
    ...(n.brier !== undefined ? { brier: n.brier } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
  });
  const averaged = config.average.enabled;
  const results = averaged
    ? [stage('before averaging', 0.01), stage('after averaging', 0), stage('after temperature scaling', -0.005, 1.5)]
    : [stage('final', 0), stage('after temperature scaling', -0.005, 1.5)];
  return {
    runName: config.output.runName!,
    runDir: dir,
    configHash: configHash(config),
    method: config.sparse.method,
    model: config.model.name,
    targetDensity: config.sparse.density,
    seed: config.seed,
    split: config.calibrate.split,
    results,
    layers: [{ layer: 'conv1', size: 100, active: Math.round(100 * config.sparse.density) }],
    outputs: { 'reliability diagram': path.join(dir, 'reliability.png'), metrics: path.join(dir, 'metrics.arrow') },
    steps: 40,
    ...(n.wallTimeMs !== undefined ? { wallTimeMs: n.wallTimeMs } : {}),
  };
}

/** A runOne that does what the real train job does to the run directory: summary.json and a diagram. */
export function fakeRunOne(numbers: Numbers, calls: { config: RunConfig; resume: boolean }[] = [], hooks: { before?: (config: RunConfig, index: number) => void | TrainOutcome } = {}): RunOne {
  return async (config, _job, run) => {
    calls.push({ config, resume: run.resume });
    const early = hooks.before?.(config, run.index);
    if (early) return early;
    const summary = fakeSummary(config, numbers(config));
    await sharp({ create: { width: 20, height: 20, channels: 3, background: '#3b6fb6' } }).png().toFile(path.join(run.runDir.dir, 'reliability.png'));
    writeSummary(run.runDir.paths.summary, summary);
    return { status: 'completed', step: 40, summary };
  };
}

export function readJson(file: string): any {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

