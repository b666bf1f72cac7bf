/**
 * cigl's public API: calibrated sparse training (CigL, ICLR 2023) as composable RxJS stages.
 *
 * What a program may import from `cigl` (CommonJS `require('cigl')` or ESM `import … from 'cigl'`);
 * every other module is internal and may change. The pieces, in the order a run uses them:
 *
 * - **Config**: {@link resolveConfig} (a config file, a base object and overrides → a complete,
 *   validated {@link RunConfig}), {@link configHash}, {@link configJsonSchema}.
 * - **Training**: {@link runTraining} runs a {@link Pipeline} (the built-in {@link pipelines} or your
 *   own, composed from {@link stages}) as `cigl train` does; the training operator {@link train} and its
 *   {@link TrainEvent}s, with {@link onEvent} / {@link ofType} to watch one kind.
 * - **Data and models**: {@link loadDataset}, {@link demoDataPath}, {@link createModel}.
 * - **Calibration**: {@link calibrationMetrics} (accuracy, ECE, NLL, Brier), {@link fitTemperature} and
 *   {@link temperatureScale}.
 * - **Using a trained model**: {@link predict} / {@link Predictor} give calibrated class probabilities,
 *   softmax(logits / T), from a run's saved model; {@link readRunSummary} reads its summary.json.
 * - **Serving**: {@link startDaemon} (HTTP API, dashboard, run queue) and the queues it runs.
 *
 * @packageDocumentation
 */

// ---- config ---------------------------------------------------------------------------------------
export {
  CONFIG_FIELDS,
  ConfigError,
  ConfigFileSchema,
  canonicalJson,
  configDiff,
  configHash,
  configJsonSchema,
  describeConfigFields,
  isConfigField,
  loadConfigFile,
  resolveConfig,
  type AverageConfig,
  type CalibrateConfig,
  type ConfigField,
  type ConfigIssue,
  type ConfigOverride,
  type ConfigSources,
  type DataConfig,
  type ModelConfig,
  type OptimiserConfig,
  type OutputConfig,
  type RunConfig,
  type SparseConfig,
  type TrainConfig,
} from './config/config';

// ---- jobs: training runs as the CLI, the daemon and the sweep start them ------------------------
export { createTrainJob, runTraining, type TrainRunOptions, type TrainRunWithPipeline } from './job/train-run';
export type { RunIo, TextOutput } from './job/io';
export type {
  EvalReport,
  EvalRequest,
  PredictRequest,
  SweepFailure,
  SweepJob,
  SweepOutcome,
  TrainFunction,
  TrainJob,
  TrainOutcome,
} from './job/jobs';
export { runTrainJob, type Pipeline } from './pipeline/run-job';
export { createRunContext, type RunContext } from './pipeline/run-context';
export type { RunData } from './pipeline/run-data';
export { RunCheckpointStateSchema, type RunCheckpointState } from './pipeline/checkpoint-state';

// ---- pipelines and their stages ------------------------------------------------------------------
import * as stages from './pipeline/stages';
import { cigl, dense, pipelineFor, PIPELINES, rigl } from '../pipelines';

/**
 * The stages of a training run, each an RxJS operator (or source) given the run ({@link RunContext}):
 * `trainingBatches → trainStage → logMetrics → showProgress → [averageSnapshots] → checkpoints →
 * finishTraining → [averageWeights] → recomputeBatchNorm → calibrate → writeOutputs`. The built-in
 * pipelines are compositions of exactly these; compose your own in a {@link Pipeline}'s `build`.
 */
export { stages };
export type {
  AverageEvent,
  CalibratedCandidate,
  CalibratedModels,
  ModelCandidate,
  ModelsWithBatchNorm,
  ModelWithBatchNorm,
  RunEvent,
  TrainedModels,
} from './pipeline/stages';
export { RunStopped } from './pipeline/stages';

/** The built-in pipelines: `cigl` (RigL + random mask + averaging), `rigl` (also SET and static), `dense`. */
export const pipelines = { cigl, rigl, dense } as const;
export { PIPELINES, pipelineFor };

// ---- the training operator and its events --------------------------------------------------------
export { train, type TrainStageOptions } from './train/train-operator';
export { Trainer, type TrainerConfig } from './train/trainer';
export { isTrainEvent, ofType, onEvent, type TrainEventOfType } from './train/of-type';
export type { BatchEndEvent, EpochEndEvent, LayerMaskUpdate, MaskUpdateEvent, SnapshotEvent, StepEvent, TrainEvent } from './train/events';
export { TrainingDiverged } from './train/divergence';
export { SnapshotMean, type AveragedWeights, type SnapshotMeanState } from './average/snapshot-mean';
export { reportProgress, type ProgressOptions } from './report/progress';

// ---- data ----------------------------------------------------------------------------------------
export { demoDataPath } from './util/paths';
export { loadDataset, detectFormat, type DatasetSpec } from './data/load';
export { DATA_FORMATS, SPLITS, type ChannelStats, type DataFormat, type DatasetSplits, type ImageDataset, type Split } from './data/types';
export { channelStats, splitValidation } from './data/split';
export { batchStream, evalStream } from './stream/batch-stream';
export type { Batch } from './stream/batch';

// ---- models and compute ----------------------------------------------------------------------------
export { createModel, type CreateModelOptions } from './models/build';
export { MODEL_NAMES, type ModelName } from './models/zoo';
export type { Model, ParamSpec } from './models/model';
export { selectBackend, BACKEND_PREFERENCES, type BackendPreference } from './compute/backend';
export { SPARSE_METHOD_NAMES, type SparseMethodName } from './sparse/method';
export { DENSITY_DISTRIBUTIONS, type DensityDistribution } from './sparse/density';
export { layerDensities, modelDensity, type DensityCount, type LayerDensity, type ModelDensity } from './sparse/model-density';

// ---- calibration -----------------------------------------------------------------------------------
export {
  calibrationMetrics,
  calibrationMetricsFromProbabilities,
  CalibrationAccumulator,
  type CalibrationOptions,
  type CalibrationReport,
  type EqualWidthCalibration,
} from './calibrate/metrics';
export { fitTemperature, temperatureScale, type TemperatureFit, type TemperatureOptions, type TemperatureScaling } from './calibrate/temperature';
export { calibrateModel, evaluateSplit, measureSplit, type BeforeAfter, type CalibrationOutcome, type CalibrationSplits } from './calibrate/stage';
export { gatherLogits, measureCalibration, predictLogits, type LogitBatch, type SplitLogits } from './calibrate/evaluate';
export { reliabilityDiagramPng, reliabilityDiagramSvg } from './calibrate/reliability';

// ---- a run's outputs -----------------------------------------------------------------------------
export {
  STAGES,
  RunSummarySchema,
  headlineResult,
  parseRunSummary,
  readRunSummary,
  temperatureScaledResult,
  type AveragingSummary,
  type ModelStage,
  type RunSummary,
  type StageResult,
} from './sinks/summary';
export { ModelMetadataSchema, type ModelMetadata } from './sinks/model-metadata';
export { readArrowLog } from './sinks/arrow-log';

// ---- calibrated predictions from a saved model (runs/NAME/model): softmax(logits / T) ---------------
export {
  calibratedPredictions,
  predict,
  Predictor,
  type ClassProbability,
  type Prediction,
  type PredictOptions,
  type PredictorOptions,
} from './predict/predictor';
export { loadSavedModel, readSavedModelMetadata, type SavedModel, type SavedModelMetadata } from './predict/saved-model';
export { predictionJsonLine, predictionsArrow } from './predict/prediction-formats';
/** The saved Layers model's tensor names and the cigl names they hold (also those of model.safetensors). */
export { layersTensors, type LayersTensor } from './models/export-layers';
export { evaluateSavedModel } from './pipeline/evaluate-saved';

// ---- sweeps, the daemon and its queues ----------------------------------------------------------------
export { runSweep, trainRunOne, type RunOne } from './sweep/run-sweep';
export { compareRuns, type ComparisonGroup } from './sweep/comparison';
export { startDaemon, type Daemon, type DaemonOptions } from './daemon/daemon';
export { daemonPipelines } from './daemon/pipelines';
export type { DaemonPipeline } from './daemon/run-scheduler';
export { EmbeddedRunQueue } from './daemon/embedded-run-queue';
export { RedisRunQueue, type RedisRunQueueOptions } from './daemon/redis-run-queue';
export type { RunQueue, RunRecord, RunRequest, RunState } from './daemon/run-queue';
export { parseRunRequest, RunRequestBodySchema, type RunRequestBody } from './daemon/run-request';
