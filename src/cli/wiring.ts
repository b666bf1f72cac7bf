import type { MonoTypeOperatorFunction } from 'rxjs';
import type { TrainEvent } from '../train/events';
import type { RunDir } from '../sinks/run-dir';
import type { LayerDensity, ModelDensity, RunSummary, StageResult } from '../sinks/summary';
import type { BackendPreference } from '../compute/backend';
import type { CliIo } from './command';
import type { DataConfig, RunConfig } from './config';
import type { ProgressOptions } from './progress';
import { installGracefulStop, type GracefulStop } from './signals';
import { defaultDataDir, fetchDataset, type FetchableDataset } from '../data/fetch';
import { evaluateSavedModel } from '../pipeline/evaluate-saved';
import { selectedPipelineJob } from '../../pipelines';
import { predictSaved, type PredictionRun } from '../pipeline/predict-saved';
import { runSweep, trainRunOne } from '../sweep/run-sweep';

/**
 * The seams between the `cigl` command line and the work it starts. The commands parse and validate
 * arguments, resolve the config, prepare run directories, install signal handling and print results;
 * what a run *does* comes from a CliWiring, so the pipelines plug in here (and tests can plug in fakes).
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
  readonly io: CliIo;
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
  readonly io: CliIo;
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

export interface CliWiring {
  readonly train: (job: TrainJob) => Promise<TrainOutcome>;
  readonly evaluate: (request: EvalRequest, io: CliIo) => Promise<EvalReport>;
  /** Loads a saved model and predicts; the command writes the predictions out. */
  readonly predict: (request: PredictRequest, io: CliIo) => Promise<PredictionRun>;
  /** Downloads a data set (checksummed, resumable); resolves with where it is. */
  readonly fetchDataset: (request: FetchDatasetRequest, io: CliIo) => Promise<{ readonly path: string }>;
  readonly sweep: (job: SweepJob) => Promise<SweepOutcome>;
  /** Installs SIGINT/SIGTERM handling for a run; default installGracefulStop(). */
  readonly gracefulStop: () => GracefulStop;
}

/** Data sets `cigl data fetch` knows. */
export const FETCHABLE_DATASETS = ['cifar10', 'cifar100'] as const;

/** A seam that has not been connected yet: fails with a message saying so, never pretends to work. */
export function notWired(what: string): () => Promise<never> {
  return () => Promise.reject(new Error(`${what} is not wired into this build of the CLI (see src/cli/wiring.ts)`));
}

/** What `cigl` runs with. The pipelines and the data fetcher are connected here. */
export const defaultWiring: CliWiring = {
  train: selectedPipelineJob(),
  evaluate: evaluateSavedModel,
  predict: predictSaved,
  fetchDataset: async (request) => {
    const result = await fetchDataset(request.dataset as FetchableDataset, request.dest ?? defaultDataDir(), { url: request.url, force: request.force });
    return { path: result.archive };
  },
  sweep: (job) => runSweep(job, trainRunOne(defaultWiring.train)),
  gracefulStop: () => installGracefulStop(),
};
