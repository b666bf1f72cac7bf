import * as fs from 'node:fs';
import { concatMap, defer, EMPTY, last, lastValueFrom, map, Observable, tap, type MonoTypeOperatorFunction, type OperatorFunction } from 'rxjs';
import { batchNormPass, recomputeBatchNorm as recomputeStatistics } from '../average/batch-norm-recompute';
import { SnapshotMean } from '../average/snapshot-mean';
import type { EqualWidthCalibration } from '../calibrate/metrics';
import { reliabilityDiagramPng, reliabilityDiagramSvg } from '../calibrate/reliability';
import { calibrateModel, type BeforeAfter, type CalibrationOutcome } from '../calibrate/stage';
import { layersWeights, toLayersModel } from '../models/export-layers';
import { reliabilityRows, writeReliabilityTable, logTrainEvents, type ReliabilityRow } from '../sinks/arrow-log';
import { writeCheckpoint } from '../sinks/checkpoint';
import { saveLayersModel } from '../sinks/layers-model-files';
import { safetensorsMetadata, writeSafetensorsFile } from '../sinks/safetensors-file';
import { writeSparseModelFile } from '../sinks/sparse-model-file';
import { layerDensities, modelDensity } from '../sparse/model-density';
import { STAGES, writeSummary, type AveragingSummary, type ModelStage, type RunSummary, type StageResult } from '../sinks/summary';
import { batchStream, evalStream } from '../stream/batch-stream';
import type { Batch } from '../stream/batch';
import type { TrainEvent } from '../train/events';
import { train } from '../train/train-operator';
import type { NamedArray, NamedArrays } from '../util/named-arrays';
import { loadBatchNorm, readBatchNorm } from './batch-norm-state';
import type { RunCheckpointState } from './checkpoint-state';
import type { RunContext } from './run-context';
import { savedModelMetadata } from './saved-model-metadata';

/**
 * The stages of a training run, each an RxJS operator (or source) given the run it belongs to (see
 * RunContext: the run's config, data, model, trainer and sinks, none of which a stage changes for a later
 * stage to find). What a later stage needs travels in the stream: the averaging stage emits the running
 * average as an `average` event, the end of training emits the trained models, and each finishing stage
 * adds to them. The types fix the order where it matters (logMetrics and showProgress read TrainEvents,
 * so they come before averageSnapshots; calibrate needs models with BatchNorm statistics, so it comes
 * after recomputeBatchNorm). The pipelines in pipelines/ compose them with pipe(), and so can you:
 *
 *   trainingBatches → trainStage → logMetrics → showProgress → [averageSnapshots] → checkpoints
 *   → finishTraining → [averageWeights] → recomputeBatchNorm → calibrate → writeOutputs
 */

/** The running weight & mask average, emitted by averageSnapshots after every snapshot it folds in. */
export interface AverageEvent {
  readonly type: 'average';
  /** The step of the latest snapshot in the average. */
  readonly step: number;
  /** The accumulator (read it, do not add to it): checkpoints save it, finishTraining passes it on. */
  readonly average: SnapshotMean;
}

/** What flows after the averaging stage: the training events and the running average. */
export type RunEvent = TrainEvent | AverageEvent;

/** A model to evaluate: its parameters (masks baked in as zeros) and the BatchNorm statistics to use. */
export interface ModelCandidate {
  /** Which model this is, in the vocabulary of summary.ts: live, live with recomputed BN, after averaging. */
  readonly stage: ModelStage;
  /** For the averaged model: what the averaging did. */
  readonly averaging?: AveragingSummary;
  readonly weights: NamedArrays;
  /** Masks of the masked layers (1 = active). */
  readonly masks: NamedArrays;
  /** Running statistics (`mean/<layer>`, `variance/<layer>`); undefined until recomputed. */
  readonly batchNorm?: NamedArrays;
}

/** What the end of training hands to the finishing stages; the last candidate is the run's model. */
export interface TrainedModels {
  /** Optimisation steps done. */
  readonly step: number;
  readonly candidates: readonly ModelCandidate[];
  /** The snapshot average, when an averaging stage ran and took a snapshot. */
  readonly average?: SnapshotMean;
}

export interface ModelWithBatchNorm extends ModelCandidate {
  readonly batchNorm: NamedArrays;
}

/** After recomputeBatchNorm: every candidate has the statistics it is evaluated with. */
export interface ModelsWithBatchNorm extends Omit<TrainedModels, 'candidates'> {
  readonly candidates: readonly ModelWithBatchNorm[];
}

export interface CalibratedCandidate extends ModelWithBatchNorm {
  readonly calibration: CalibrationOutcome;
}

export interface CalibratedModels extends Omit<TrainedModels, 'candidates'> {
  readonly candidates: readonly CalibratedCandidate[];
}

/** A graceful stop: the run checkpointed after `step` steps and can be resumed. */
export class RunStopped extends Error {
  constructor(readonly step: number) {
    super(`run stopped after step ${step}; resume with --resume`);
    this.name = 'RunStopped';
  }
}

// ---- training -------------------------------------------------------------------------------------

/** Source + augment: shuffled, augmented training batches from the worker pool, from run.start on. */
export function trainingBatches(run: Pick<RunContext, 'config' | 'data' | 'start' | 'trainer' | 'consumed'>): Observable<Batch> {
  const { config, data, start, trainer } = run;
  if (trainer.step >= trainer.totalSteps) return EMPTY; // resumed after the last step: nothing left to train
  return batchStream({
    dataset: data.train,
    stats: data.stats,
    batchSize: config.data.batchSize,
    seed: config.seed,
    epochs: config.train.epochs,
    start,
    augment: config.data.augment ? undefined : false,
    workers: config.data.workers,
    prefetch: config.data.prefetch,
    consumed: run.consumed,
  });
}

/** The training step per batch (see Trainer and train()), acknowledging each batch to the source when done. */
export function trainStage(run: Pick<RunContext, 'trainer' | 'consumed'>): OperatorFunction<Batch, TrainEvent> {
  return train(run.trainer, { consumed: run.consumed });
}

/** Streams every event into the run's Arrow metric log. */
export function logMetrics(run: Pick<RunContext, 'log'>): MonoTypeOperatorFunction<TrainEvent> {
  return logTrainEvents(run.log);
}

/** The job's progress display (a bar or log lines in the CLI; the dashboard's live view in the daemon). */
export function showProgress(run: Pick<RunContext, 'job' | 'trainer' | 'config'>): MonoTypeOperatorFunction<TrainEvent> {
  return run.job.progress({ totalSteps: run.trainer.totalSteps, epochs: run.config.train.epochs });
}

/**
 * Weight & mask averaging (CigL): folds every `snapshot` into a running average in O(one model) memory
 * (see SnapshotMean) and emits it as an `average` event right after the snapshot. A resumed run starts
 * from the average its checkpoint held, emitted first.
 */
export function averageSnapshots(run: Pick<RunContext, 'resumedAverage'>): OperatorFunction<TrainEvent, RunEvent> {
  return (events) =>
    defer(() => {
      const average = run.resumedAverage ? SnapshotMean.fromState(run.resumedAverage) : new SnapshotMean();
      const restored: RunEvent[] = average.count > 0 ? [{ type: 'average', step: average.lastStep, average }] : [];
      return new Observable<RunEvent>((subscriber) => {
        for (const event of restored) subscriber.next(event);
        return events.subscribe({
          next: (event) => {
            subscriber.next(event);
            if (event.type !== 'snapshot') return;
            try {
              average.add(event);
            } catch (err) {
              subscriber.error(err);
              return;
            }
            subscriber.next({ type: 'average', step: event.step, average });
          },
          error: (err) => subscriber.error(err),
          complete: () => subscriber.complete(),
        });
      });
    });
}

/**
 * Atomic checkpoints at batch ends: every N steps / epochs / minutes as configured, after the last step,
 * and on a graceful stop, which then ends the run with RunStopped. The checkpoint holds the trainer's
 * state and the latest `average` event's accumulator (so it comes after averageSnapshots).
 */
export function checkpoints(run: RunContext): MonoTypeOperatorFunction<RunEvent> {
  const every = run.config.train;
  return (source) =>
    defer(() => {
      let lastWrite = Date.now();
      let average: SnapshotMean | undefined;
      return source.pipe(
        tap((event) => {
          if (event.type === 'average') average = event.average;
          if (event.type !== 'batchEnd') return;
          const done = event.step + 1;
          const finished = done === run.trainer.totalSteps;
          const stopping = run.job.stop.aborted && !finished;
          const due =
            finished ||
            stopping ||
            (every.checkpointEverySteps > 0 && done % every.checkpointEverySteps === 0) ||
            (event.epochEnded && every.checkpointEveryEpochs > 0 && (event.epoch + 1) % every.checkpointEveryEpochs === 0) ||
            (every.checkpointEveryMinutes > 0 && Date.now() - lastWrite >= every.checkpointEveryMinutes * 60_000);
          if (due) {
            writeRunCheckpoint(run, average);
            lastWrite = Date.now();
          }
          if (stopping) throw new RunStopped(done);
        }),
      );
    });
}

function writeRunCheckpoint(run: RunContext, mean: SnapshotMean | undefined): string {
  // The log then holds every row up to the checkpoint, whatever happens to the process next.
  run.log.flush();
  const trainerState = run.trainer.exportState();
  const average = mean && mean.count > 0 ? mean.exportState() : undefined;
  const step = run.trainer.step;
  const state: RunCheckpointState = {
    configHash: run.configHash,
    trainer: trainerState.json,
    average: average?.json ?? null,
    next: { epoch: Math.floor(step / run.stepsPerEpoch), index: step % run.stepsPerEpoch },
    wallTimeMs: trainingWallTime(run),
  };
  const arrays: Record<string, NamedArrays> = { trainer: trainerState.arrays };
  if (average) arrays.average = average.arrays;
  return writeCheckpoint(run.runDir.paths.checkpoints, { step, arrays, state }, { keep: run.config.train.keepCheckpoints });
}

function trainingWallTime(run: Pick<RunContext, 'earlierWallTimeMs' | 'startedAt'>): number {
  return run.earlierWallTimeMs + (Date.now() - run.startedAt);
}

// ---- finishing ------------------------------------------------------------------------------------

/**
 * Waits for training to end, then emits the trained model M ⊙ W with the trainer's BatchNorm statistics
 * (stage `live`), and the snapshot average of the last `average` event, if any.
 */
export function finishTraining(run: Pick<RunContext, 'trainer' | 'model'>): OperatorFunction<RunEvent, TrainedModels> {
  return (events) =>
    defer(() => {
      let average: SnapshotMean | undefined;
      return events.pipe(
        tap((event) => {
          if (event.type === 'average') average = event.average;
        }),
        last(null, null),
        map((): TrainedModels => {
          const params = run.trainer.evaluationParams();
          const weights: Record<string, NamedArray> = {};
          for (const [name, tensor] of Object.entries(params)) weights[name] = { shape: tensor.shape, values: Float32Array.from(tensor.dataSync()) };
          const masks: Record<string, NamedArray> = {};
          for (const layer of run.trainer.layers) masks[layer.name] = { shape: layer.shape, values: Float32Array.from(run.trainer.maskOf(layer.name)) };
          const live: ModelCandidate = { stage: STAGES.live, weights, masks, batchNorm: readBatchNorm(run.model) };
          return { step: run.trainer.step, candidates: [live], ...(average && average.count > 0 ? { average } : {}) };
        }),
      );
    });
}

/**
 * Adds the weight & mask average of the snapshots (`after averaging`, BatchNorm statistics to be
 * recomputed) and, when the recompute is on, the diagnostic `live, recomputed BN`: the live weights with
 * recomputed statistics, so that a reader can tell the recompute's effect from the averaging's.
 */
export function averageWeights(run: Pick<RunContext, 'config'>): OperatorFunction<TrainedModels, TrainedModels> {
  return map((trained) => {
    if (!trained.average) {
      throw new Error(`averaging is on but no snapshot was taken (average.startEpoch ${run.config.average.startEpoch}, train.epochs ${run.config.train.epochs}; is averageSnapshots in the pipeline?)`);
    }
    const averaged = trained.average.result();
    const live = trained.candidates[trained.candidates.length - 1];
    const diagnostic: ModelCandidate[] = run.config.average.recomputeBatchNorm ? [{ stage: STAGES.liveRecomputedBatchNorm, weights: live.weights, masks: live.masks }] : [];
    const averaging: AveragingSummary = {
      snapshots: averaged.snapshots, firstStep: averaged.firstStep, lastStep: averaged.lastStep,
      relativeChange: relativeDistance(averaged.weights, live.weights),
    };
    return { ...trained, candidates: [...trained.candidates, ...diagnostic, { stage: STAGES.averaged, weights: averaged.weights, masks: averaged.masks, averaging }] };
  });
}

/**
 * Gives every candidate without statistics fresh BatchNorm running statistics from one pass over the
 * training split as training saw it (see batchNormPass), or the trainer's statistics when recomputation
 * is switched off. Deterministic by seed, so a run killed here resumes from its last checkpoint to the
 * same bits.
 */
export function recomputeBatchNorm(run: Pick<RunContext, 'config' | 'data' | 'model' | 'ops' | 'job'>): OperatorFunction<TrainedModels, ModelsWithBatchNorm> {
  return concatMap(async (trained) => {
    const candidates: ModelWithBatchNorm[] = [];
    for (const candidate of trained.candidates) {
      if (candidate.batchNorm) {
        candidates.push({ ...candidate, batchNorm: candidate.batchNorm });
      } else if (!run.config.average.recomputeBatchNorm) {
        candidates.push({ ...candidate, batchNorm: readBatchNorm(run.model) });
      } else {
        run.job.io.stderr.write(`cigl: recomputing BatchNorm statistics for '${candidate.stage}' (one pass over ${run.data.train.count} training images)\n`);
        await recomputeStatistics(run.model, candidate.weights, recomputeBatches(run), run.ops);
        candidates.push({ ...candidate, batchNorm: readBatchNorm(run.model) });
      }
    }
    return { ...trained, candidates };
  });
}

/** The recompute's batches: the run's training split as training saw it (see batchNormPass). */
function recomputeBatches(run: Pick<RunContext, 'config' | 'data'>): Observable<Batch> {
  const { config, data } = run;
  return batchNormPass({ dataset: data.train, stats: data.stats, batchSize: config.data.batchSize, seed: config.seed, augment: config.data.augment, workers: config.data.workers, prefetch: config.data.prefetch });
}

/** Validation and test metrics of every candidate, and a temperature fitted on validation for each. */
export function calibrate(run: Pick<RunContext, 'config' | 'data' | 'model' | 'ops'>): OperatorFunction<ModelsWithBatchNorm, CalibratedModels> {
  return concatMap(async (models) => {
    const candidates: CalibratedCandidate[] = [];
    for (const candidate of models.candidates) {
      loadBatchNorm(run.model, candidate.batchNorm);
      const split = (dataset: typeof run.data.train) => evalStream({ dataset, stats: run.data.stats, batchSize: run.config.data.batchSize, workers: 0 });
      const calibration = await lastValueFrom(
        calibrateModel(run.model, candidate.weights, run.ops, { validation: split(run.data.validation), test: run.data.test ? split(run.data.test) : undefined }, { binCounts: run.config.calibrate.bins }),
      );
      candidates.push({ ...candidate, calibration });
    }
    return { ...models, candidates };
  });
}

/**
 * Writes the run's outputs: the final model (tfjs Layers format with metadata, and the compact sparse
 * file), the reliability diagram and bins, calibration rows in the metric log, summary.json.
 */
export function writeOutputs(run: RunContext): OperatorFunction<CalibratedModels, RunSummary> {
  return concatMap(async ({ candidates, step }) => {
    const { config, runDir, model, log } = run;
    const paths = runDir.paths;
    const final = candidates[candidates.length - 1];
    const reportSplit = config.calibrate.split === 'validation' || !run.data.test ? 'validation' : 'test';
    const report = (c: CalibratedCandidate): BeforeAfter => (reportSplit === 'test' && c.calibration.test) || c.calibration.validation;
    const temperature = final.calibration.temperature.temperature;
    // One row per model at T = 1; the run's model (the headline) also at its fitted temperature, in a row that names it.
    const results: StageResult[] = candidates.map((c) => stageResult(c.stage, report(c).before));
    if (config.calibrate.temperatureScaling) results.push({ ...stageResult(STAGES.temperatureScaled, report(final).after), temperature, scaled: final.stage });
    const layers = layerDensities(final.masks);
    const density = modelDensity(Object.fromEntries(Object.entries(final.weights).map(([name, w]) => [name, w.values.length])), layers);

    // One walk over model × split × (T = 1, fitted T): metric rows for the log, bins for the table.
    const epoch = config.train.epochs;
    const rows: ReliabilityRow[] = [];
    for (const c of candidates) {
      for (const [split, outcome] of [['validation', c.calibration.validation], ['test', c.calibration.test]] as const) {
        if (!outcome) continue;
        const phase = split === 'validation' ? 'val' : 'test';
        for (const [calibrated, r] of [[false, outcome.before], [true, outcome.after]] as const) {
          const prefix = `${metricName(c.stage)}${calibrated ? '.temperature_scaled' : ''}`;
          log.metric({ step, epoch, phase, metric: `${prefix}.accuracy`, value: r.accuracy });
          log.metric({ step, epoch, phase, metric: `${prefix}.nll`, value: r.nll });
          log.metric({ step, epoch, phase, metric: `${prefix}.brier`, value: r.brier });
          for (const bins of r.equalWidth) {
            log.metric({ step, epoch, phase, metric: `${prefix}.ece${bins.bins}`, value: bins.ece });
            rows.push(...reliabilityRows({ runId: runDir.name, split, stage: c.stage, calibrated }, bins));
          }
        }
      }
    }
    writeReliabilityTable(paths.reliability, rows);

    // The diagram shows the headline model (before temperature scaling) and says so.
    const diagram: EqualWidthCalibration = report(final).before.equalWidth[0];
    const title = `${config.sparse.method} ${config.model.name}, density ${config.sparse.method === 'dense' ? 1 : config.sparse.density}, ${reportSplit} split: ${final.stage} (headline), T = 1`;
    fs.writeFileSync(paths.reliabilitySvg, reliabilityDiagramSvg(diagram, { title }));
    fs.writeFileSync(paths.reliabilityPng, await reliabilityDiagramPng(diagram, { title }));

    const metadata = savedModelMetadata({
      config,
      configHash: run.configHash,
      data: run.data,
      stage: final.stage,
      temperature,
      evaluatedOn: reportSplit,
      report: report(final),
      layers,
      density,
      temperatureScaling: config.calibrate.temperatureScaling,
    });
    loadBatchNorm(model, final.batchNorm);
    const layersModel = toLayersModel(model, Object.fromEntries(Object.entries(final.weights).map(([k, v]) => [k, v.values])));
    try {
      await saveLayersModel(paths.model, layersModel, metadata);
    } finally {
      layersModel.dispose();
    }
    const sparseArrays: Record<string, NamedArray> = { ...final.weights };
    for (const [key, value] of Object.entries(final.batchNorm)) sparseArrays[`batchNorm/${key}`] = value;
    const fileBytes = writeSparseModelFile(paths.sparseModel, { arrays: sparseArrays, metadata });
    writeSafetensorsFile(paths.safetensors, layersWeights(model.architecture, final.weights, final.batchNorm), safetensorsMetadata(metadata));
    const denseBytes = Object.values(sparseArrays).reduce((n, a) => n + 4 * a.values.length, 0);

    const summary: RunSummary = {
      runName: runDir.name,
      runDir: runDir.dir,
      configHash: run.configHash,
      method: config.sparse.method,
      model: config.model.name,
      targetDensity: config.sparse.method === 'dense' ? 1 : config.sparse.density,
      seed: config.seed,
      split: reportSplit,
      headline: final.stage,
      results,
      layers,
      density,
      outputs: {
        metrics: paths.metricsFile,
        'mask stats': paths.maskStatsFile,
        model: paths.model,
        'sparse model': paths.sparseModel,
        'safetensors model': paths.safetensors,
        'reliability diagram': paths.reliabilityPng,
        'reliability bins': paths.reliability,
        checkpoints: paths.checkpoints,
        summary: paths.summary,
      },
      modelSize: { fileBytes, denseBytes },
      ...(final.averaging && { averaging: final.averaging }),
      steps: step,
      wallTimeMs: trainingWallTime(run),
      backend: run.backend,
    };
    writeSummary(paths.summary, summary);
    log.close({ final: true });
    return summary;
  });
}

/** ‖a − b‖ / ‖b‖ over all parameters of b (float64 sums). */
function relativeDistance(a: NamedArrays, b: NamedArrays): number {
  let diff = 0;
  let norm = 0;
  for (const [name, { values }] of Object.entries(b)) {
    const other = a[name].values;
    for (let i = 0; i < values.length; i++) {
      diff += (other[i] - values[i]) ** 2;
      norm += values[i] ** 2;
    }
  }
  return Math.sqrt(diff / norm);
}

/** A stage's name as a metric-name prefix, e.g. `after_averaging` (metrics.arrow rows `after_averaging.ece15`). */
function metricName(stage: string): string {
  return stage.replace(/[^A-Za-z0-9]+/g, '_');
}

function stageResult(stage: string, r: BeforeAfter['before']): StageResult {
  return { stage, accuracy: r.accuracy, ece: Object.fromEntries(r.equalWidth.map((b) => [String(b.bins), b.ece])), nll: r.nll, brier: r.brier };
}
