import type { Observable } from 'rxjs';
import { lastValueFrom } from 'rxjs';
import type { TrainJob, TrainOutcome } from '../job/jobs';
import type { RunSummary } from '../sinks/summary';
import { createRunContext, type RunContext } from './run-context';
import { RunStopped } from './stages';

/** A pipeline definition: a name for users and the daemon, and how it composes the stages. */
export interface Pipeline {
  readonly name: string;
  readonly description: string;
  /** Config the pipeline implies (merged under the user's config by the CLI and the daemon). */
  readonly defaults: Readonly<Record<string, unknown>>;
  readonly build: (ctx: RunContext) => Observable<RunSummary>;
}

/**
 * Runs one training job through a pipeline: builds the run context (data, backend, model, trainer,
 * checkpoint restore), runs the composed stages to the summary, and always releases what it built.
 * A graceful stop (the job's AbortSignal) ends with status 'stopped' after a checkpoint.
 */
export async function runTrainJob(job: TrainJob, pipeline: Pipeline): Promise<TrainOutcome> {
  const ctx = await createRunContext(job);
  let outcome: TrainOutcome;
  try {
    const summary = await lastValueFrom(pipeline.build(ctx));
    outcome = { status: 'completed', step: ctx.trainer.step, summary };
  } catch (err) {
    if (!(err instanceof RunStopped)) {
      // The run's own error says what went wrong; one of releasing (e.g. the log's last flush on the same full disk) must not hide it.
      try {
        ctx.dispose();
      } catch {
        // secondary
      }
      throw err;
    }
    outcome = { status: 'stopped', step: err.step };
  }
  ctx.dispose();
  return outcome;
}
