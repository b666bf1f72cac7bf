import type { MonoTypeOperatorFunction } from 'rxjs';
import type { BackendPreference } from '../compute/backend';
import type { DataConfig, RunConfig } from '../config/config';
import type { ProgressOptions } from '../report/progress';
import type { RunDir } from '../sinks/run-dir';
import type { LayerDensity, ModelDensity, RunSummary, StageResult } from '../sinks/summary';
import type { TrainEvent } from '../train/events';
import type { RunIo } from './io';

/**
 * The jobs cigl runs and what they return: a training run, an evaluation, predictions, a data download,
 * a sweep. The CLI, the daemon, the sweep and library users build these and hand them to the same
 * functions (pipelines' runTrainJob, evaluateSavedModel, predictSaved, runSweep).
 */

export interface TrainJob {
  readonly config: RunConfig;
  readonly configHash: string;
  /** Created (or, on resume, reopened and checked against the config) before the job starts. */
  readonly runDir: RunDir;
  /** True for `--resume`: load the newest checkpoint of runDir and continue from it. */
  readonly resume: boolean;
  /** Aborted on the first SIGINT/SIGTERM: finish the current step, checkpoint, return status 'stopped'. */
  readonly stop: AbortSignal;
  /** Pass-through stage that shows progress on stdout (a bar on a terminal, log lines otherwise). */
  readonly progress: (options?: ProgressOptions) => MonoTypeOperatorFunction<TrainEvent>;
  readonly io: RunIo;
}

export interface TrainOutcome {
  /** 'stopped' after a graceful stop (the run can be resumed). */
  readonly status: 'completed' | 'stopped';
  /** Optimisation steps completed. */
  readonly step: number;
  /** Headline numbers of a completed run (also written to summary.json by the job). */
  readonly summary?: RunSummary;
}

export interface EvalRequest {
  /** A saved model directory (model.json + weights). */
  readonly modelDir: string;
  /** Data to evaluate on; undefined: the data the model was trained on, from its metadata. */
  readonly dataPath?: string;
  readonly dataFormat: DataConfig['format'];
  readonly split: 'train' | 'validation' | 'test';
  readonly bins: readonly number[];
  readonly batchSize: number;
  /** Compute path (default 'auto'). */
  readonly backend?: BackendPreference;
}

export interface EvalReport {
  readonly split: string;
  readonly results: readonly StageResult[];
  readonly layers?: readonly LayerDensity[];
  /** The model's density over its masked layers and over all parameters, from its metadata. */
  readonly density?: ModelDensity;
}

export interface PredictRequest {
  /** A saved model directory (model.json + weights). */
  readonly modelDir: string;
  /** Image files (JPEG/PNG) to predict; empty: a data set split (dataPath, split). */
  readonly files: readonly string[];
  /** The data set when `files` is empty; undefined: the one the model was trained on. */
  readonly dataPath?: string;
  readonly dataFormat: DataConfig['format'];
  readonly split: 'train' | 'validation' | 'test';
  /** Classes listed per input. */
  readonly topK: number;
  /** Flag predictions whose calibrated confidence is below this (0: never). */
  readonly abstainBelow: number;
  readonly batchSize: number;
  readonly backend: BackendPreference;
}

export interface FetchDatasetRequest {
  /** A name from FETCHABLE_DATASETS. */
  readonly dataset: string;
  /** Destination directory; undefined: the data module's default cache. */
  readonly dest?: string;
  /** Download from this URL instead of the official one (mirrors, tests). */
  readonly url?: string;
  /** Download again even if a verified copy exists. */
  readonly force: boolean;
}

export interface SweepJob {
  /** Directory holding one run directory per configuration. */
  readonly dir: string;
  /** Resolved and validated configuration of every run, in order (methods × densities × seeds). */
  readonly runs: readonly RunConfig[];
  readonly stop: AbortSignal;
  readonly progress: (options?: ProgressOptions) => MonoTypeOperatorFunction<TrainEvent>;
  readonly io: RunIo;
  /** A command line that re-creates this sweep (recorded in the sweep's sweep.json). */
  readonly command?: string;
}

/** A run of a sweep that failed (the other runs go on). */
export interface SweepFailure {
  readonly runName: string;
  readonly error: string;
}

export interface SweepOutcome {
  readonly status: 'completed' | 'stopped';
  /** One per finished run. */
  readonly summaries: readonly RunSummary[];
  /** Runs that failed, in sweep order. */
  readonly failures?: readonly SweepFailure[];
}

/** Runs one training job (the pipeline the config selects, in the CLI and the daemon). */
export type TrainFunction = (job: TrainJob) => Promise<TrainOutcome>;
