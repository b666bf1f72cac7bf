import type { CliIo } from './command';
import type { EvalReport, EvalRequest, FetchDatasetRequest, PredictRequest, SweepJob, SweepOutcome, TrainJob, TrainOutcome } from '../job/jobs';
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

export type { EvalReport, EvalRequest, FetchDatasetRequest, PredictRequest, SweepFailure, SweepJob, SweepOutcome, TrainJob, TrainOutcome } from '../job/jobs';

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
