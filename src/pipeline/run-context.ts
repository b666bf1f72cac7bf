import { lastValueFrom, Subject } from 'rxjs';
import type { SnapshotMeanState } from '../average/snapshot-mean';
import { measureSplit } from '../calibrate/stage';
import type { RunIo } from '../job/io';
import type { RunConfig } from '../config/config';
import type { TrainJob } from '../job/jobs';
import { selectBackend } from '../compute/backend';
import type { Ops } from '../compute/ops';
import { createModel } from '../models/build';
import type { Model } from '../models/model';
import { loadLatestCheckpoint } from '../sinks/checkpoint';
import { ArrowRunLog } from '../sinks/arrow-log';
import type { RunDir } from '../sinks/run-dir';
import { evalStream } from '../stream/batch-stream';
import type { BatchPosition } from '../stream/epoch-plan';
import { batchesPerEpoch } from '../stream/epoch-plan';
import { Trainer, type TrainerConfig } from '../train/trainer';
import type { SplitMetrics, Validate } from '../train/validation';
import { parseRunCheckpointState } from './checkpoint-state';
import { prepareRunData, type RunData } from './run-data';

/**
 * A run's environment, what its stages are given: config, data, compute path, model, trainer, the metric
 * log, where training (re)starts and what a resumed run restored. Built once per run by
 * createRunContext (and released by dispose); the stages in stages.ts read it, and none sets anything on
 * it for a later stage to find: what passes between stages travels in the stream.
 */
export interface RunContext {
  readonly config: RunConfig;
  readonly configHash: string;
  readonly runDir: RunDir;
  readonly data: RunData;
  readonly ops: Ops;
  /** Which compute path runs, in words (said at start and stored in the summary). */
  readonly backend: string;
  readonly model: Model;
  readonly trainer: Trainer;
  /** The snapshot average the checkpoint of a resumed run held (averageSnapshots starts from it). */
  readonly resumedAverage?: SnapshotMeanState;
  readonly log: ArrowRunLog;
  /** The first batch to train: (0, 0), or the one after the checkpoint a resumed run loaded. */
  readonly start: BatchPosition;
  readonly stepsPerEpoch: number;
  /** Told after each batch is fully processed, so the batch stream stays at most `prefetch` ahead. */
  readonly consumed: Subject<void>;
  readonly job: Pick<TrainJob, 'stop' | 'progress' | 'io' | 'resume'>;
  /** Training wall time of earlier segments of a resumed run. */
  readonly earlierWallTimeMs: number;
  readonly startedAt: number;
  dispose(): void;
}

export async function createRunContext(job: TrainJob): Promise<RunContext> {
  const { config, runDir, io } = job;
  const data = await prepareRunData(config);
  const { ops, description } = await selectBackend(config.train.backend);
  io.stderr.write(`cigl: compute backend: ${description}\n`);
  const inputShape = [data.train.height, data.train.width, data.train.channels];
  const model = createModel(config.model.name, { seed: config.seed, inputShape, numClasses: data.classNames.length });
  const stepsPerEpoch = batchesPerEpoch(data.train.count, config.data.batchSize, false);
  let trainer: Trainer | undefined;
  let log: ArrowRunLog | undefined;
  try {
    trainer = new Trainer(trainerConfig(config, model, ops, stepsPerEpoch, validateOn(data, config, io)));
    let resumedAverage: SnapshotMeanState | undefined;
    let earlierWallTimeMs = 0;
    if (job.resume) {
      const restored = restoreCheckpoint(job, trainer);
      if (restored) {
        if (restored.average && restored.averageArrays) resumedAverage = { arrays: restored.averageArrays, json: restored.average };
        earlierWallTimeMs = restored.wallTimeMs;
      }
    }
    const step = trainer.step;
    const start = { epoch: Math.floor(step / stepsPerEpoch), index: step % stepsPerEpoch };
    // Flushed every 0.5 s so that dashboards tailing the log look live (and at every checkpoint).
    log = ArrowRunLog.open(runDir.dir, runDir.name, { resume: job.resume, flushIntervalMs: 500 });
    const owned = { trainer, log };
    return {
      config, configHash: job.configHash, runDir, data, ops, backend: description, model, trainer, resumedAverage, log,
      start, stepsPerEpoch, consumed: new Subject<void>(), job, earlierWallTimeMs, startedAt: Date.now(),
      dispose() {
        try {
          owned.log.close();
        } finally {
          owned.trainer.dispose();
          model.dispose();
        }
      },
    };
  } catch (err) {
    log?.close();
    trainer?.dispose();
    model.dispose();
    throw err;
  }
}

function trainerConfig(config: RunConfig, model: Model, ops: Ops, stepsPerEpoch: number, validate: Validate): TrainerConfig {
  const { sparse, optimiser } = config;
  const lr =
    optimiser.schedule === 'cosine'
      ? { kind: 'cosine' as const, baseLr: optimiser.lr, warmupEpochs: optimiser.warmupEpochs }
      : { kind: 'step' as const, baseLr: optimiser.lr, warmupEpochs: optimiser.warmupEpochs, milestones: optimiser.milestones, gamma: optimiser.gamma };
  return {
    model, ops, seed: config.seed, epochs: config.train.epochs, stepsPerEpoch, validate, lr,
    sparsity: {
      method: sparse.method,
      density: sparse.method === 'dense' ? undefined : sparse.density,
      distribution: sparse.distribution,
      keepFirstDense: config.model.firstLayerDense,
      maskClassifier: sparse.maskClassifier,
      updateEvery: sparse.updateInterval,
      dropFraction: sparse.dropFraction,
      endFraction: sparse.endFraction,
      randomMaskRate: sparse.randomMaskRate,
    },
    optimizer: { momentum: optimiser.momentum, nesterov: optimiser.nesterov, weightDecay: optimiser.weightDecay },
    // Without averaging no epoch emits a snapshot.
    averageFromEpoch: config.average.enabled ? config.average.startEpoch : config.train.epochs,
    snapshotsPerEpoch: config.average.snapshotsPerEpoch,
  };
}

/**
 * The epoch-end validation hook: loss, accuracy and 15-bin ECE on the held-out validation part, and on
 * the test split too with train.testEveryEpoch.
 */
function validateOn(data: RunData, config: RunConfig, _io: RunIo): Validate {
  if (config.train.testEveryEpoch && !data.test) throw new Error(`train.testEveryEpoch is on, but ${config.data.path} has no test split`);
  return async ({ model, ops, params }) => {
    const measure = async (dataset: RunData['validation']): Promise<SplitMetrics> => {
      const batches = evalStream({ dataset, stats: data.stats, batchSize: config.data.batchSize, workers: 0 });
      const report = await lastValueFrom(measureSplit(model, params, ops, batches, { binCounts: [15] }));
      return { loss: report.nll, accuracy: report.accuracy, ece: report.equalWidth[0].ece };
    };
    const validation = await measure(data.validation);
    if (!config.train.testEveryEpoch || !data.test) return validation;
    return { ...validation, test: await measure(data.test) };
  };
}

interface Restored {
  readonly average: SnapshotMeanState['json'] | null;
  readonly averageArrays?: SnapshotMeanState['arrays'];
  readonly wallTimeMs: number;
}

function restoreCheckpoint(job: TrainJob, trainer: Trainer): Restored | undefined {
  const loaded = loadLatestCheckpoint(job.runDir.paths.checkpoints);
  for (const skipped of loaded?.skipped ?? []) job.io.stderr.write(`cigl: skipped damaged checkpoint ${skipped.dir}: ${skipped.reason}\n`);
  if (!loaded) {
    job.io.stderr.write('cigl: no checkpoint yet; the run starts from the beginning\n');
    return undefined;
  }
  const { arrays } = loaded;
  const state = parseRunCheckpointState(loaded.state, loaded.dir);
  if (state.configHash !== job.configHash) {
    throw new Error(`checkpoint ${loaded.dir} was written by config ${state.configHash}, this run has ${job.configHash}`);
  }
  trainer.importState({ arrays: arrays.trainer ?? {}, json: state.trainer });
  job.io.stderr.write(`cigl: resumed from ${loaded.dir} (step ${loaded.step})\n`);
  return { average: state.average, averageArrays: arrays.average, wallTimeMs: state.wallTimeMs };
}
