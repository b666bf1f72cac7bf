import type { RunConfig } from '../src/config/config';
import type { TrainJob, TrainOutcome } from '../src/job/jobs';
import { runTrainJob, type Pipeline } from '../src/pipeline/run-job';
import { cigl } from './cigl';
import { dense } from './dense';
import { rigl } from './rigl';

export { cigl, dense, rigl };

/** Pipelines by name, for the CLI and the daemon. */
export const PIPELINES: Readonly<Record<string, Pipeline>> = { cigl, rigl, dense };

/**
 * The pipeline a resolved config runs: with averaging on, CigL's composition (whatever the method, e.g.
 * RigL + averaging for the "no random mask" ablation); otherwise RigL's, which also serves dense, SET
 * and static.
 */
export function pipelineFor(config: RunConfig): Pipeline {
  if (config.average.enabled) return cigl;
  return config.sparse.method === 'dense' ? dense : rigl;
}

/**
 * The training job of `cigl train`, as a factory: the pipeline the config selects. The daemon's trainer
 * threads load it by name (see daemon/run-trainer.ts).
 */
export function selectedPipelineJob(): (job: TrainJob) => Promise<TrainOutcome> {
  return (job) => runTrainJob(job, pipelineFor(job.config));
}
