import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { MonoTypeOperatorFunction } from 'rxjs';
import { configHash, resolveConfig, type ConfigOverride, type RunConfig } from '../../src/config/config';
import type { SweepJob, TrainOutcome } from '../../src/cli/wiring';
import type { ProgressOptions } from '../../src/report/progress';
import { ArrowRunLog } from '../../src/sinks/arrow-log';
import { writeSummary, type RunSummary, type StageResult } from '../../src/sinks/summary';
import { sweepRunName } from '../../src/sweep/comparison';
import type { RunOne } from '../../src/sweep/run-sweep';
import type { EpochEndEvent, TrainEvent } from '../../src/train/events';
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

/**
 * Headline numbers of a fake run, by (label, density, seed). The temperature-scaled stage has ECE and NLL
 * 0.005 lower unless `scaledEce15` is given; T = `temperature` (default 1.5).
 */
export type Numbers = (config: RunConfig) => {
  accuracy: number;
  ece15: number;
  ece10: number;
  nll?: number;
  brier?: number;
  wallTimeMs?: number;
  scaledEce15?: number;
  temperature?: number;
};

/**
 * The stages of an averaged (CigL) fake run relative to 'after averaging': the live model ("before
 * averaging") and the live weights with recomputed BatchNorm statistics, in ECE and accuracy.
 */
export const AVERAGED_STAGE_SHIFTS = {
  'before averaging': { ece: 0.01, accuracy: -0.01 },
  'live + recomputed BN': { ece: 0.006, accuracy: -0.004 },
  'after averaging': { ece: 0, accuracy: 0 },
} as const;

/** The averaging record of an averaged fake run of `seed`. */
export const fakeAveraging = (seed: number) => ({ snapshots: 4, firstStep: 30, lastStep: 39, relativeChange: 0.1 + 0.01 * seed });

/** A summary as the train job writes it: a stage per model, a temperature-scaled stage last. */
export function fakeSummary(config: RunConfig, n: ReturnType<Numbers>): RunSummary {
  const dir = path.join(config.output.runsDir, config.output.runName!);
  const stage = (name: string, shift: number, accuracyShift = 0, temperature?: number): StageResult => ({
    stage: name,
    accuracy: n.accuracy + accuracyShift,
    ece: { '15': n.ece15 + shift, '10': n.ece10 + shift },
    ...(n.nll !== undefined ? { nll: n.nll + shift } : {}),
    ...(n.brier !== undefined ? { brier: n.brier } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
  });
  const scaledShift = n.scaledEce15 === undefined ? -0.005 : n.scaledEce15 - n.ece15;
  const scaled = stage('after temperature scaling', scaledShift, 0, n.temperature ?? 1.5);
  const averaged = config.average.enabled;
  const results = averaged
    ? [...Object.entries(AVERAGED_STAGE_SHIFTS).map(([name, s]) => stage(name, s.ece, s.accuracy)), scaled]
    : [stage('final', 0), scaled];
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
    ...(averaged ? { averaging: fakeAveraging(config.seed) } : {}),
    steps: 40,
    ...(n.wallTimeMs !== undefined ? { wallTimeMs: n.wallTimeMs } : {}),
  };
}

/** What a fake run logs for each epoch: the trainer's epochEnd values and the lr of the epoch's steps. */
export type FakeEpoch = Omit<EpochEndEvent, 'type' | 'step' | 'epoch' | 'wallTimeMs'> & { readonly lr: number };
export type Curves = (config: RunConfig) => readonly FakeEpoch[];

/** Steps per fake epoch in the metric log. */
export const FAKE_STEPS_PER_EPOCH = 10;

/**
 * A metric log (metrics.arrow) written with the project's own Arrow log writer, as a training run leaves
 * it: per epoch two step rows (the first at twice the epoch's lr, so that the epoch's lr is its last
 * step's) and the epochEnd rows, then the final evaluation's rows (stage-prefixed metric names, epoch =
 * the number of epochs), which are not per-epoch values.
 */
export function writeFakeMetricLog(dir: string, runId: string, epochs: readonly FakeEpoch[]): void {
  const log = ArrowRunLog.open(dir, runId, { flushIntervalMs: 60_000 });
  epochs.forEach((e, epoch) => {
    const first = epoch * FAKE_STEPS_PER_EPOCH;
    const last = first + FAKE_STEPS_PER_EPOCH - 1;
    for (const [step, lr] of [[first, 2 * e.lr], [last, e.lr]]) {
      log.record({ type: 'step', step, epoch, loss: e.trainLoss, accuracy: e.trainAccuracy, lr, imagesPerSecond: 1000, wallTimeMs: step });
    }
    const { lr: _lr, ...end } = e;
    log.record({ type: 'epochEnd', step: last, epoch, ...end, wallTimeMs: last });
  });
  const at = { step: epochs.length * FAKE_STEPS_PER_EPOCH - 1, epoch: epochs.length };
  for (const phase of ['val', 'test']) {
    log.metric({ ...at, phase, metric: 'final.accuracy', value: 0.123 });
    log.metric({ ...at, phase, metric: 'final.nll', value: 9.87 });
    log.metric({ ...at, phase, metric: 'final.ece15', value: 0.456 });
  }
  log.close({ final: true });
}

/** A runOne that does what the real train job does to the run directory: summary.json and a diagram. */
export function fakeRunOne(
  numbers: Numbers,
  calls: { config: RunConfig; resume: boolean }[] = [],
  hooks: { before?: (config: RunConfig, index: number) => void | TrainOutcome; curves?: Curves } = {},
): RunOne {
  return async (config, _job, run) => {
    calls.push({ config, resume: run.resume });
    const early = hooks.before?.(config, run.index);
    if (early) return early;
    if (hooks.curves) writeFakeMetricLog(run.runDir.dir, config.output.runName!, hooks.curves(config));
    const summary = fakeSummary(config, numbers(config));
    await sharp({ create: { width: 20, height: 20, channels: 3, background: '#3b6fb6' } }).png().toFile(path.join(run.runDir.dir, 'reliability.png'));
    writeSummary(run.runDir.paths.summary, summary);
    return { status: 'completed', step: 40, summary };
  };
}

export function readJson(file: string): any {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

