import * as fs from 'node:fs';
import { concatMap, defer, EMPTY, last, lastValueFrom, map, tap, type MonoTypeOperatorFunction, type Observable, type OperatorFunction } from 'rxjs';
import { batchNormPass, recomputeBatchNorm as recomputeStatistics } from '../average/batch-norm-recompute';
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
import { writeSummary, type AveragingSummary, type RunSummary, type StageResult } from '../sinks/summary';
import { batchStream, evalStream } from '../stream/batch-stream';
import type { Batch } from '../stream/batch';
import type { TrainEvent } from '../train/events';
import { train } from '../train/train-operator';
import type { NamedArray, NamedArrays } from '../util/named-arrays';
import { loadBatchNorm, readBatchNorm } from './batch-norm-state';
import type { RunCheckpointState, RunContext } from './run-context';

/**
 * The named stages of a training run, each an RxJS operator (or source) bound to a RunContext. The
 * pipelines in pipelines/ compose them with pipe():
 *   trainingBatches → trainStage → foldSnapshots → logMetrics → showProgress → checkpoints
 *   → finishTraining → averageWeights → recomputeBatchNorm → calibrate → writeOutputs
 */

/** A model to evaluate: its parameters (masks baked in as zeros) and the BatchNorm statistics to use. */
export interface ModelCandidate {
  /** For the averaged model: what the averaging did. */
  readonly averaging?: AveragingSummary;
  /** 'final' (no averaging), or 'before averaging', 'live + recomputed BN' and 'after averaging'. */
  readonly label: string;
  readonly weights: NamedArrays;
  /** Masks of the masked layers (1 = active). */
  readonly masks: NamedArrays;
  /** Running statistics (`mean/<layer>`, `variance/<layer>`); undefined until recomputed. */
  readonly batchNorm?: NamedArrays;
}

/** What training hands to the finishing stages; the last candidate is the run's model. */
export interface TrainedModels {
  readonly candidates: readonly ModelCandidate[];
}

export interface CalibratedCandidate extends ModelCandidate {
  readonly batchNorm: NamedArrays;
  readonly calibration: CalibrationOutcome;
}

export interface CalibratedModels {
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

/** Source + augment: shuffled, augmented training batches from the worker pool, from ctx.start on. */
export function trainingBatches(ctx: RunContext): Observable<Batch> {
  const { config, data, start, trainer } = ctx;
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
    consumed: ctx.consumed,
  });
}

/** The training step per batch (see Trainer), acknowledging each batch to the source when done. */
export function trainStage(ctx: RunContext): OperatorFunction<Batch, TrainEvent> {
  return train(ctx.trainer, { consumed: ctx.consumed });
}

/** Folds every `snapshot` into the run's averaging accumulator (which checkpoints carry). */
export function foldSnapshots(ctx: RunContext): MonoTypeOperatorFunction<TrainEvent> {
  return tap((event) => {
    if (event.type === 'snapshot' && ctx.mean) ctx.mean.add(event);
  });
}

/** Streams every event into the Arrow metric log. */
export function logMetrics(ctx: RunContext): MonoTypeOperatorFunction<TrainEvent> {
  return logTrainEvents(ctx.log);
}

export function showProgress(ctx: RunContext): MonoTypeOperatorFunction<TrainEvent> {
  return ctx.job.progress({ totalSteps: ctx.trainer.totalSteps, epochs: ctx.config.train.epochs });
}

/**
 * Atomic checkpoints at batch ends: every N steps / epochs / minutes as configured, after the last step,
 * and on a graceful stop, which then ends the run with RunStopped. Placed after foldSnapshots, so the
 * averaging accumulator already holds the batch's snapshot.
 */
export function checkpoints(ctx: RunContext): MonoTypeOperatorFunction<TrainEvent> {
  const every = ctx.config.train;
  return (source) =>
    defer(() => {
      let lastWrite = Date.now();
      return source.pipe(
        tap((event) => {
          if (event.type !== 'batchEnd') return;
          const done = event.step + 1;
          const finished = done === ctx.trainer.totalSteps;
          const stopping = ctx.job.stop.aborted && !finished;
          const due =
            finished ||
            stopping ||
            (every.checkpointEverySteps > 0 && done % every.checkpointEverySteps === 0) ||
            (event.epochEnded && every.checkpointEveryEpochs > 0 && (event.epoch + 1) % every.checkpointEveryEpochs === 0) ||
            (every.checkpointEveryMinutes > 0 && Date.now() - lastWrite >= every.checkpointEveryMinutes * 60_000);
          if (due) {
            writeRunCheckpoint(ctx);
            lastWrite = Date.now();
          }
          if (stopping) throw new RunStopped(done);
        }),
      );
    });
}

export function writeRunCheckpoint(ctx: RunContext): string {
  // The log then holds every row up to the checkpoint, whatever happens to the process next.
  ctx.log.flush();
  const trainerState = ctx.trainer.exportState();
  const average = ctx.mean && ctx.mean.count > 0 ? ctx.mean.exportState() : undefined;
  const step = ctx.trainer.step;
  const state: RunCheckpointState = {
    configHash: ctx.configHash,
    trainer: trainerState.json,
    average: average?.json ?? null,
    next: { epoch: Math.floor(step / ctx.stepsPerEpoch), index: step % ctx.stepsPerEpoch },
    wallTimeMs: trainingWallTime(ctx),
  };
  const arrays: Record<string, NamedArrays> = { trainer: trainerState.arrays };
  if (average) arrays.average = average.arrays;
  return writeCheckpoint(ctx.runDir.paths.checkpoints, { step, arrays, state }, { keep: ctx.config.train.keepCheckpoints });
}

function trainingWallTime(ctx: RunContext): number {
  return ctx.earlierWallTimeMs + (Date.now() - ctx.startedAt);
}

// ---- finishing ------------------------------------------------------------------------------------

/**
 * Waits for training to end, then emits the trained model M ⊙ W with the trainer's BatchNorm statistics
 * ('final', or 'before averaging' when an averaging stage follows).
 */
export function finishTraining(ctx: RunContext): OperatorFunction<TrainEvent, TrainedModels> {
  return (events) =>
    events.pipe(
      last(null, null),
      map(() => {
        const params = ctx.trainer.evaluationParams();
        const weights: Record<string, NamedArray> = {};
        for (const [name, tensor] of Object.entries(params)) weights[name] = { shape: tensor.shape, values: Float32Array.from(tensor.dataSync()) };
        const masks: Record<string, NamedArray> = {};
        for (const layer of ctx.trainer.layers) masks[layer.name] = { shape: layer.shape, values: Float32Array.from(ctx.trainer.maskOf(layer.name)) };
        const label = ctx.mean ? 'before averaging' : 'final';
        return { candidates: [{ label, weights, masks, batchNorm: readBatchNorm(ctx.model) }] };
      }),
    );
}

/**
 * Adds the weight & mask average of the snapshots (BatchNorm statistics to be recomputed) and, when the
 * recompute is on, the diagnostic "live + recomputed BN": the live weights with recomputed statistics, so
 * that a reader can tell the recompute's effect from the averaging's.
 */
export function averageWeights(ctx: RunContext): OperatorFunction<TrainedModels, TrainedModels> {
  return map((trained) => {
    if (!ctx.mean || ctx.mean.count === 0) {
      throw new Error(`averaging is on but no snapshot was taken (average.startEpoch ${ctx.config.average.startEpoch}, train.epochs ${ctx.config.train.epochs})`);
    }
    const averaged = ctx.mean.result();
    const live = trained.candidates[trained.candidates.length - 1];
    const diagnostic: ModelCandidate[] = ctx.config.average.recomputeBatchNorm ? [{ label: 'live + recomputed BN', weights: live.weights, masks: live.masks }] : [];
    const averaging: AveragingSummary = {
      snapshots: averaged.snapshots, firstStep: averaged.firstStep, lastStep: averaged.lastStep,
      relativeChange: relativeDistance(averaged.weights, live.weights),
    };
    return { candidates: [...trained.candidates, ...diagnostic, { label: 'after averaging', weights: averaged.weights, masks: averaged.masks, averaging }] };
  });
}

/**
 * Gives every candidate without statistics fresh BatchNorm running statistics from one pass over the
 * training split as training saw it (see batchNormPass), or the trainer's statistics when recomputation
 * is switched off. Deterministic by seed, so a run killed here resumes from its last checkpoint to the
 * same bits.
 */
export function recomputeBatchNorm(ctx: RunContext): OperatorFunction<TrainedModels, TrainedModels> {
  return concatMap(async (trained) => {
    const candidates: ModelCandidate[] = [];
    for (const candidate of trained.candidates) {
      if (candidate.batchNorm) {
        candidates.push(candidate);
      } else if (!ctx.config.average.recomputeBatchNorm) {
        candidates.push({ ...candidate, batchNorm: readBatchNorm(ctx.model) });
      } else {
        ctx.job.io.stderr.write(`cigl: recomputing BatchNorm statistics for '${candidate.label}' (one pass over ${ctx.data.train.count} training images)\n`);
        await recomputeStatistics(ctx.model, candidate.weights, recomputeBatches(ctx), ctx.ops);
        candidates.push({ ...candidate, batchNorm: readBatchNorm(ctx.model) });
      }
    }
    return { candidates };
  });
}

/** The recompute's batches: the run's training split as training saw it (see batchNormPass). */
function recomputeBatches(ctx: RunContext): Observable<Batch> {
  const { config, data } = ctx;
  return batchNormPass({
    dataset: data.train, stats: data.stats, batchSize: config.data.batchSize, seed: config.seed,
    augment: config.data.augment, workers: config.data.workers, prefetch: config.data.prefetch,
  });
}

/** Validation and test metrics of every candidate, and a temperature fitted on validation. */
export function calibrate(ctx: RunContext): OperatorFunction<TrainedModels, CalibratedModels> {
  return concatMap(async (trained) => {
    const candidates: CalibratedCandidate[] = [];
    for (const candidate of trained.candidates) {
      const batchNorm = candidate.batchNorm;
      if (!batchNorm) throw new Error(`calibrate: model '${candidate.label}' has no BatchNorm statistics; recomputeBatchNorm must run first`);
      loadBatchNorm(ctx.model, batchNorm);
      const split = (dataset: typeof ctx.data.train) => evalStream({ dataset, stats: ctx.data.stats, batchSize: ctx.config.data.batchSize, workers: 0 });
      const calibration = await lastValueFrom(
        calibrateModel(ctx.model, candidate.weights, ctx.ops, { validation: split(ctx.data.validation), test: ctx.data.test ? split(ctx.data.test) : undefined }, { binCounts: ctx.config.calibrate.bins }),
      );
      candidates.push({ ...candidate, batchNorm, calibration });
    }
    return { candidates };
  });
}

/**
 * Writes the run's outputs: the final model (tfjs Layers format with metadata, and the compact sparse
 * file), the reliability diagram and bins, calibration rows in the metric log, summary.json.
 */
export function writeOutputs(ctx: RunContext): OperatorFunction<CalibratedModels, RunSummary> {
  return concatMap(async ({ candidates }) => {
    const { config, runDir, model, log } = ctx;
    const paths = runDir.paths;
    const final = candidates[candidates.length - 1];
    const reportSplit = config.calibrate.split === 'validation' || !ctx.data.test ? 'validation' : 'test';
    const report = (c: CalibratedCandidate): BeforeAfter => (reportSplit === 'test' && c.calibration.test) || c.calibration.validation;
    const temperature = final.calibration.temperature.temperature;
    const results: StageResult[] = candidates.map((c) => stageResult(c.label, report(c).before));
    if (config.calibrate.temperatureScaling) results.push({ ...stageResult('after temperature scaling', report(final).after), temperature });
    const layers = layerDensities(final.masks);
    const density = modelDensity(Object.fromEntries(Object.entries(final.weights).map(([name, w]) => [name, w.values.length])), layers);

    // One walk over model × split × (T = 1, fitted T): metric rows for the log, bins for the table.
    const step = ctx.trainer.step;
    const epoch = config.train.epochs;
    const rows: ReliabilityRow[] = [];
    for (const c of candidates) {
      for (const [split, outcome] of [['validation', c.calibration.validation], ['test', c.calibration.test]] as const) {
        if (!outcome) continue;
        const phase = split === 'validation' ? 'val' : 'test';
        for (const [calibrated, r] of [[false, outcome.before], [true, outcome.after]] as const) {
          const prefix = `${c.label.replace(/ /g, '_')}${calibrated ? '.temperature_scaled' : ''}`;
          log.metric({ step, epoch, phase, metric: `${prefix}.accuracy`, value: r.accuracy });
          log.metric({ step, epoch, phase, metric: `${prefix}.nll`, value: r.nll });
          log.metric({ step, epoch, phase, metric: `${prefix}.brier`, value: r.brier });
          for (const bins of r.equalWidth) {
            log.metric({ step, epoch, phase, metric: `${prefix}.ece${bins.bins}`, value: bins.ece });
            rows.push(...reliabilityRows({ runId: runDir.name, split, stage: c.label, calibrated }, bins));
          }
        }
      }
    }
    writeReliabilityTable(paths.reliability, rows);

    const diagram: EqualWidthCalibration = report(final).before.equalWidth[0];
    const title = `${config.sparse.method} ${config.model.name}, density ${config.sparse.method === 'dense' ? 1 : config.sparse.density}, ${reportSplit} split (${final.label})`;
    fs.writeFileSync(paths.reliabilitySvg, reliabilityDiagramSvg(diagram, { title }));
    fs.writeFileSync(paths.reliabilityPng, await reliabilityDiagramPng(diagram, { title }));

    const metadata = {
      generatedBy: 'cigl',
      method: config.sparse.method,
      model: config.model.name,
      configHash: ctx.configHash,
      seed: config.seed,
      data: { format: config.data.format, path: config.data.path, validationFraction: config.data.validationFraction },
      classNames: ctx.data.classNames,
      inputShape: [ctx.data.train.height, ctx.data.train.width, ctx.data.train.channels],
      normalisation: ctx.data.stats,
      temperature,
      accuracy: report(final).before.accuracy,
      ece: Object.fromEntries(report(final).before.equalWidth.map((b) => [String(b.bins), b.ece])),
      evaluatedOn: reportSplit,
      layers: layers.map((l) => ({ ...l, sparsity: 1 - l.active / l.size })),
      density,
    };
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
      configHash: ctx.configHash,
      method: config.sparse.method,
      model: config.model.name,
      targetDensity: config.sparse.method === 'dense' ? 1 : config.sparse.density,
      seed: config.seed,
      split: reportSplit,
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
      wallTimeMs: trainingWallTime(ctx),
      backend: ctx.backend,
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

function stageResult(stage: string, r: BeforeAfter['before']): StageResult {
  return { stage, accuracy: r.accuracy, ece: Object.fromEntries(r.equalWidth.map((b) => [String(b.bins), b.ece])), nll: r.nll, brier: r.brier };
}
