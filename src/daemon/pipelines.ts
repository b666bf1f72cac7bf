import { PIPELINES } from '../../pipelines';
import type { DaemonPipeline } from './run-scheduler';
import type { JobRunnerRef } from './run-trainer';

/** The job runner of `cigl train` (pipelines/index.ts), as the daemon's trainer threads load it. */
export const SELECTED_PIPELINE_RUNNER: JobRunnerRef = { module: require.resolve('../../pipelines'), export: 'selectedPipelineJob' };

/**
 * The pipelines a daemon offers, by the name `POST /runs` gives: `train` runs what the config selects
 * (exactly as `cigl train`), and each of pipelines/ (cigl, rigl, dense) the same with its defaults
 * merged under the submitted config, so that it selects that composition.
 */
export function daemonPipelines(runner: JobRunnerRef = SELECTED_PIPELINE_RUNNER): Record<string, DaemonPipeline> {
  return {
    train: { runner, description: 'the composition the config selects, as cigl train runs it' },
    ...Object.fromEntries(Object.values(PIPELINES).map((p) => [p.name, { runner, defaults: p.defaults, description: p.description }])),
  };
}
