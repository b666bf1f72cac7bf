import type { MonoTypeOperatorFunction } from 'rxjs';
import { ConfigError, configHash, type RunConfig } from '../config/config';
import { pipelineFor } from '../../pipelines';
import { dataPathMissing } from '../pipeline/run-data';
import { runTrainJob, type Pipeline } from '../pipeline/run-job';
import { reportProgress, type ProgressOptions } from '../report/progress';
import { prepareRunDir } from '../sinks/run-dir';
import type { TrainEvent } from '../train/events';
import type { RunIo } from './io';
import type { TrainJob, TrainOutcome } from './jobs';

export interface TrainRunOptions {
  /** Continue the run `config.output.runName` from its newest checkpoint (the config must be the same). */
  readonly resume?: boolean;
  /** Abort to stop after the current step with a checkpoint (the outcome is then 'stopped'). */
  readonly stop?: AbortSignal;
  /** Where messages and progress go; default: the process's stdout, stderr and working directory. */
  readonly io?: RunIo;
  /**
   * The progress stage: false for none, true (the default) for `cigl train`'s (a bar on a terminal,
   * log lines otherwise, on io.stdout), or an operator of your own.
   */
  readonly progress?: boolean | ((options?: ProgressOptions) => MonoTypeOperatorFunction<TrainEvent>);
}

export interface TrainRunWithPipeline extends TrainRunOptions {
  /** The stages to run; default: the one `cigl train` picks for the config (pipelineFor). */
  readonly pipeline?: Pipeline;
}

/**
 * A training job for a resolved config, as `cigl train` makes it: the data path checked, the run
 * directory created (or, with `resume`, reopened and checked against the config), the io, stop signal
 * and progress stage filled in.
 */
export function createTrainJob(config: RunConfig, options: TrainRunOptions = {}): TrainJob {
  const missing = dataPathMissing(config);
  if (missing) throw new ConfigError([{ path: 'data.path', message: missing }]);
  const io = options.io ?? { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() };
  const resume = options.resume === true;
  const progress =
    typeof options.progress === 'function'
      ? options.progress
      : options.progress === false
        ? () => (source: Parameters<MonoTypeOperatorFunction<TrainEvent>>[0]) => source
        : (o?: ProgressOptions) => reportProgress(io.stdout, { epochs: config.train.epochs, ...o });
  return {
    config,
    configHash: configHash(config),
    runDir: prepareRunDir(config, { resume }),
    resume,
    stop: options.stop ?? new AbortController().signal,
    progress,
    io,
  };
}

/**
 * Trains one run, as `cigl train` does, through `options.pipeline` (default: the config's), and resolves
 * with its outcome: 'completed' with the run's summary (summary.json), or 'stopped' after a checkpoint.
 */
export function runTraining(config: RunConfig, options: TrainRunWithPipeline = {}): Promise<TrainOutcome> {
  return runTrainJob(createTrainJob(config, options), options.pipeline ?? pipelineFor(config));
}
