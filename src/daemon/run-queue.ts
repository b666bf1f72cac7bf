import type { Observable } from 'rxjs';
import type { RunConfig } from '../config/config';
import type { RunSummary } from '../sinks/summary';

/**
 * The daemon's queue of runs, as one small contract. The daemon only submits, claims, settles, cancels
 * and reads runs through it, so the embedded queue (one process, a JSON file: embedded-run-queue.ts)
 * and a distributed one (BullMQ on Redis, many daemons pulling from one queue) are interchangeable:
 *
 * - submit      → Queue.add(pipeline, request, { jobId: id })
 * - claim       → Worker.getNextJob(token) (the implementation renews the job's lock until settle)
 * - settle      → job.moveToCompleted / moveToFailed; `interrupted` puts the job back to wait
 * - cancel      → job.remove() when waiting; a flag the owning worker sees on `changes$` when active
 * - changes$    → QueueEvents
 *
 * Runs are claimed oldest first. Where a run's files live is not the queue's business: every worker
 * derives the run directory from the id (a shared folder when daemons run on several machines), and a
 * run whose directory already exists is resumed from its newest checkpoint.
 */
export type RunState = 'queued' | 'running' | 'completed' | 'failed' | 'diverged' | 'cancelled';

/** 'diverged': training stopped at a non-finite loss or gradient (see TrainingDiverged); never retried. */
export const TERMINAL_STATES: readonly RunState[] = ['completed', 'failed', 'diverged', 'cancelled'];

export function isTerminal(state: RunState): boolean {
  return TERMINAL_STATES.includes(state);
}

/** What a client asked for, validated: plain JSON, so any queue can carry it. */
export interface RunRequest {
  readonly id: string;
  /** Name of the pipeline that trains it (a key of the daemon's pipeline table). */
  readonly pipeline: string;
  /** The resolved configuration, with output.runsDir and output.runName set by the daemon. */
  readonly config: RunConfig;
  readonly configHash: string;
}

export interface RunRecord extends RunRequest {
  readonly state: RunState;
  /** ISO 8601 times. */
  readonly submittedAt: string;
  /** First claim. */
  readonly startedAt?: string;
  /** Reaching a terminal state. */
  readonly finishedAt?: string;
  /**
   * Attempts used: claims by a worker, less those that ended in a graceful stop (a daemon shut down,
   * the run queued again to be resumed), which use up none. More than 1: resumed after a failure or crash.
   */
  readonly attempts: number;
  /** The worker holding (or that last held) the run. */
  readonly worker?: string;
  /** Queued again after an interruption (daemon stopped or died mid-run): the next claim resumes it. */
  readonly interrupted?: boolean;
  /** A cancel arrived while the run was running; its worker stops it and settles it as cancelled. */
  readonly cancelRequested?: boolean;
  /** Optimisation steps completed when the run was last settled. */
  readonly step?: number;
  /** Why a failed (or diverged) run failed. */
  readonly error?: string;
}

/** How a claimed run ended. */
export type RunResult =
  /** The summary travels with the result where the queue keeps results (the Redis queue does). */
  | { readonly kind: 'completed'; readonly step: number; readonly summary?: RunSummary }
  | { readonly kind: 'failed'; readonly error: string; readonly step?: number }
  /** `step`: the step whose loss or gradient was not finite. */
  | { readonly kind: 'diverged'; readonly error: string; readonly step: number }
  | { readonly kind: 'cancelled'; readonly step?: number }
  /** Stopped by a shutdown: back in the queue (in its place) to be resumed, its attempt not counted. */
  | { readonly kind: 'interrupted'; readonly step: number };

export class RunQueueError extends Error {
  constructor(
    message: string,
    /** 'duplicate': submit with a used id; 'unknown': no such run; 'state': not allowed in the run's state. */
    readonly reason: 'duplicate' | 'unknown' | 'state',
  ) {
    super(message);
    this.name = 'RunQueueError';
  }
}

export interface RunQueue {
  /** Appends a run; rejects (RunQueueError 'duplicate') an id already used. */
  submit(request: RunRequest): Promise<RunRecord>;
  get(id: string): Promise<RunRecord | undefined>;
  /** All runs, oldest submission first. */
  list(): Promise<readonly RunRecord[]>;
  /** Marks the oldest queued run running for `worker` and returns it; undefined when none is queued. */
  claim(worker: string): Promise<RunRecord | undefined>;
  /** Records how a run claimed by this daemon ended. */
  settle(id: string, result: RunResult): Promise<RunRecord>;
  /**
   * Cancels a run: a queued one at once; a running one is flagged `cancelRequested` for its worker to
   * stop. A finished run is returned unchanged. Undefined when there is no such run.
   */
  cancel(id: string): Promise<RunRecord | undefined>;
  /** Every changed record, after the change is durable. Completes on close. */
  readonly changes$: Observable<RunRecord>;
  /**
   * Ids of runs this process claimed and no longer holds, where claims can expire (a distributed queue's
   * lock ran out while the process stalled): their worker must stop training them at once, since another
   * worker may be resuming them. Queues whose claims never expire leave it out.
   */
  readonly claimLost$?: Observable<string>;
  close(): Promise<void>;
}
