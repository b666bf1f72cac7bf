import * as fs from 'node:fs';
import * as path from 'node:path';
import { lastValueFrom, Subject } from 'rxjs';
import { calibrationMetricsFromProbabilities } from '../../src/calibrate/metrics';
import { reliabilityDiagramSvg } from '../../src/calibrate/reliability';
import type { TrainJob, TrainOutcome } from '../../src/cli/wiring';
import type { JobRunnerRef } from '../../src/daemon/run-trainer';
import { ArrowRunLog, logTrainEvents, reliabilityRows, writeReliabilityTable } from '../../src/sinks/arrow-log';
import { writeFileAtomic } from '../../src/sinks/atomic-file';
import { loadLatestCheckpoint, writeCheckpoint } from '../../src/sinks/checkpoint';
import { STAGES, writeSummary } from '../../src/sinks/summary';
import type { TrainEvent } from '../../src/train/events';
import { Rng } from '../../src/util/rng';

/**
 * A stand-in for the real training pipeline that behaves like it towards the daemon, with no model: it
 * steps on a timer, streams its events through the job's progress stage into the real Arrow run log,
 * checkpoints with the real checkpoint writer every `train.checkpointEverySteps` steps and when asked
 * to stop, resumes from the newest checkpoint, and at a clean end writes the final logs, a reliability
 * diagram (the real SVG renderer) and summary.json. Its one "weight" is a float32 recurrence over the
 * steps, so an interrupted-and-resumed run ends with exactly the weight of an uninterrupted one only if
 * the resume continued from the right step with the right state.
 */
export interface FakeJobOptions {
  /** Wall time of one step; default 20 ms. */
  readonly stepMs?: number;
  readonly stepsPerEpoch?: number;
  /** Metric log flush interval; default 50 ms. */
  readonly flushIntervalMs?: number;
  /** A file that each job appends its run name to when it starts (to see which runs were trained). */
  readonly trainedLog?: string;
}

/** The fake job as a daemon's trainer threads load it (the job runs in a thread: see run-trainer.ts). */
export function fakeRunner(options: FakeJobOptions = {}): JobRunnerRef {
  return testRunner('fakeTrainJob', options);
}

/** Another job factory of this module, by name, for a daemon's trainer threads. */
export function testRunner(name: 'fakeTrainJob' | 'failingTrainJob' | 'crashingTrainJob', options?: unknown): JobRunnerRef {
  return { module: __filename, export: name, options };
}

/** A job that fails at once with `message`. */
export function failingTrainJob(message: string): (job: TrainJob) => Promise<TrainOutcome> {
  return async () => {
    throw new Error(message);
  };
}

/**
 * A job that takes its thread down a moment after it starts, without settling its promise: by an
 * exception thrown outside it ('throw'), or by process.exit ('exit').
 */
export function crashingTrainJob(how: 'throw' | 'exit'): (job: TrainJob) => Promise<TrainOutcome> {
  return () =>
    new Promise<TrainOutcome>(() => {
      setTimeout(() => {
        if (how === 'exit') process.exit(7);
        throw new Error('the trainer blew up');
      }, 50);
    });
}

export const FAKE_STEPS_PER_EPOCH = 10;

/** The weight after `steps` steps from the start (what the recurrence gives without interruption). */
export function fakeWeightAfter(steps: number): number {
  let w = Math.fround(1);
  for (let s = 0; s < steps; s++) w = nextWeight(w, s);
  return w;
}

function nextWeight(w: number, step: number): number {
  return Math.fround(Math.fround(w * 0.97) + Math.fround(Math.sin(step) * 0.05));
}

export function fakeTrainJob(options: FakeJobOptions = {}): (job: TrainJob) => Promise<TrainOutcome> {
  const stepMs = options.stepMs ?? 20;
  const stepsPerEpoch = options.stepsPerEpoch ?? FAKE_STEPS_PER_EPOCH;
  return async (job) => {
    const { config, runDir, stop } = job;
    const total = config.train.epochs * stepsPerEpoch;
    const every = config.train.checkpointEverySteps;
    const checkpoint = job.resume ? loadLatestCheckpoint<{ weight: number }>(runDir.paths.checkpoints) : undefined;
    let step = checkpoint?.step ?? 0;
    let weight = checkpoint?.state.weight ?? Math.fround(1);
    if (job.resume) job.io.stderr.write(`fake job: resuming from ${checkpoint ? `checkpoint at step ${step}` : 'the start (no checkpoint)'}\n`);
    if (options.trainedLog) fs.appendFileSync(options.trainedLog, `${runDir.name}\n`);

    const log = ArrowRunLog.open(runDir.dir, runDir.name, { resume: job.resume, flushIntervalMs: options.flushIntervalMs ?? 50 });
    const events = new Subject<TrainEvent>();
    const consumed = lastValueFrom(events.pipe(job.progress({ totalSteps: total }), logTrainEvents(log)), { defaultValue: undefined });
    const save = () =>
      writeCheckpoint(runDir.paths.checkpoints, { step, arrays: { weights: { w: { shape: [1], values: Float32Array.of(weight) } } }, state: { weight } }, { keep: config.train.keepCheckpoints });
    try {
      while (step < total && !stop.aborted) {
        await new Promise((resolve) => setTimeout(resolve, stepMs));
        weight = nextWeight(weight, step);
        for (const event of eventsAt(step, weight, stepsPerEpoch, config.sparse.method !== 'dense')) events.next(event);
        step++;
        if (every > 0 && step % every === 0) save();
      }
      if (step < total) save(); // asked to stop: checkpoint where we are
      events.complete();
      await consumed;
    } catch (err) {
      log.close();
      throw err;
    }
    if (step < total) {
      log.close();
      return { status: 'stopped', step };
    }
    log.close({ final: true });
    writeFinalOutputs(job, weight, step);
    return { status: 'completed', step };
  };
}

/** A step's events; a dense run (`masked` false) makes no mask updates, as the real job. */
function eventsAt(step: number, weight: number, stepsPerEpoch: number, masked: boolean): TrainEvent[] {
  const epoch = Math.floor(step / stepsPerEpoch);
  const wallTimeMs = step;
  const loss = 2 / (1 + 0.2 * step) + weight * 0.01;
  const out: TrainEvent[] = [{ type: 'step', step, epoch, loss, accuracy: Math.min(1, 0.1 + 0.02 * step), lr: 0.1, imagesPerSecond: 500 + step, wallTimeMs }];
  if (masked && step % 5 === 0) {
    out.push({
      type: 'maskUpdate', step, epoch, wallTimeMs,
      layers: ['conv1', 'fc1'].map((layer, i) => ({ layer, pruned: 10 + i, grown: 10 + i, reselected: i, density: 0.1 + 0.05 * i + 0.001 * step, dropFraction: 0.3, regrownPruned: i })),
    });
  }
  if (step % stepsPerEpoch === stepsPerEpoch - 1) {
    out.push({ type: 'epochEnd', step, epoch, trainLoss: loss, trainAccuracy: 0.5, validationLoss: loss * 1.1, validationAccuracy: 0.4 + 0.01 * epoch, validationEce: 0.1 / (1 + epoch), wallTimeMs });
  }
  return out;
}

/**
 * What the real job leaves at a clean end: the reliability diagram and its bins, a model file, and
 * summary.json with the real job's stages (live, after averaging, after temperature scaling). The
 * predictions are drawn from the seed; lower densities guess right less often with the same confidence
 * (so they are worse calibrated), and averaging and temperature scaling pull the confidence in.
 */
function writeFinalOutputs(job: TrainJob, weight: number, steps: number): void {
  const { runDir, config } = job;
  const rng = new Rng(config.seed);
  const n = 200;
  const classes = 4;
  const labels = new Int32Array(n);
  const guesses = new Int32Array(n);
  const confidences = new Float32Array(n);
  const right = 0.45 + 0.3 * config.sparse.density;
  for (let i = 0; i < n; i++) {
    labels[i] = rng.nextInt(classes);
    guesses[i] = rng.nextFloat() < right ? labels[i] : rng.nextInt(classes);
    confidences[i] = 0.5 + 0.5 * rng.nextFloat();
  }
  const report = (shrink: number) => {
    const probabilities = new Float32Array(n * classes);
    for (let i = 0; i < n; i++) {
      const confidence = 1 / classes + (confidences[i] - 1 / classes) * shrink;
      for (let c = 0; c < classes; c++) probabilities[i * classes + c] = c === guesses[i] ? confidence : (1 - confidence) / (classes - 1);
    }
    return calibrationMetricsFromProbabilities(probabilities, labels, classes, { binCounts: [15, 10] });
  };
  const live = report(1);
  const averaged = report(0.9);
  const scaled = report(0.7);
  const result = (stage: string, r: typeof live) => ({ stage, accuracy: r.accuracy, ece: { '15': r.equalWidth[0].ece, '10': r.equalWidth[1].ece }, nll: r.nll, brier: r.brier });
  const at = { runId: runDir.name, split: 'test', stage: STAGES.averaged };
  writeReliabilityTable(runDir.paths.reliability, [...reliabilityRows({ ...at, calibrated: false }, averaged.equalWidth[0]), ...reliabilityRows({ ...at, calibrated: true }, scaled.equalWidth[0])]);
  writeFileAtomic(runDir.paths.reliabilitySvg, reliabilityDiagramSvg(averaged.equalWidth[0], { title: `fake run ${runDir.name}` }));
  fs.mkdirSync(runDir.paths.model, { recursive: true });
  writeFileAtomic(path.join(runDir.paths.model, 'fake-weights.json'), JSON.stringify({ weight }) + '\n');
  writeSummary(runDir.paths.summary, {
    runName: runDir.name,
    runDir: runDir.dir,
    configHash: job.configHash,
    method: config.sparse.method,
    model: config.model.name,
    targetDensity: config.sparse.density,
    seed: config.seed,
    split: 'test',
    headline: STAGES.averaged,
    results: [result(STAGES.live, live), result(STAGES.averaged, averaged), { ...result(STAGES.temperatureScaled, scaled), temperature: 1.4, scaled: STAGES.averaged }],
    layers: [],
    outputs: { reliability: runDir.paths.reliabilitySvg, model: runDir.paths.model },
    steps,
  });
}
