import * as path from 'node:path';
import { Worker as Thread } from 'node:worker_threads';
import { Subject } from 'rxjs';
import type { ProgressOptions } from '../report/progress';
import type { TrainJob, TrainOutcome } from '../job/jobs';
import { defaultOpenMpSpinning } from '../compute/openmp-spinning';
import { TrainingDiverged } from '../train/divergence';
import type { TrainEvent } from '../train/events';

/**
 * Trains one daemon run in a thread of its own, so that however hard the run computes, the daemon's
 * event loop stays free for HTTP, the live streams and the queue. Closures cannot cross into a thread,
 * so the thread loads the job runner a JobRunnerRef names and runs the TrainJob there; what belongs to
 * the daemon stays on this side and talks to the thread by messages:
 *
 * ```
 * job.stop             → { stop: reason }          aborts the thread's own stop signal
 * job.progress(opts)   ← { progress: {id, options} }, { event: {id, event} }, { progressEnd: id }
 *                        the thread's progress stage forwards its events (snapshots without their
 *                        arrays), and they run through this side's progress stage (output log, live stats)
 * job.io               ← { write: {stream, text} }
 * memory               ← { memory: {numTensors, numBytes} }  the thread's tfjs engine, after each step
 * the end              ← { outcome } or { failed: error }   then the thread is ended
 * ```
 *
 * A thread that dies instead (an uncaught exception, process.exit, its heap exhausted) fails the run
 * with that error, and the daemon goes on. Events, logs and checkpoints are the job's own, written by
 * the thread exactly as in-process; only their transport to the daemon changed.
 */
export interface JobRunnerRef {
  /** Absolute path of a (compiled) module. */
  readonly module: string;
  /** Name of an exported factory: `(options) => (job: TrainJob) => Promise<TrainOutcome>`. */
  readonly export: string;
  /** Handed to the factory; structured-cloneable. */
  readonly options?: unknown;
}

export interface ThreadMemory {
  readonly numTensors: number;
  readonly numBytes: number;
}

/** What the thread is given (workerData). */
export interface TrainerThreadData {
  readonly runner: JobRunnerRef;
  readonly job: Pick<TrainJob, 'config' | 'configHash' | 'runDir' | 'resume'>;
  readonly io: {
    readonly cwd: string;
    readonly stdout: { readonly isTTY?: boolean; readonly columns?: number };
    readonly stderr: { readonly isTTY?: boolean; readonly columns?: number };
  };
}

/** An error as it crosses from the thread: its name, message, stack and own fields. */
export interface ThreadError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** Messages from the thread. */
export type TrainerReport =
  | { readonly write: { readonly stream: 'stdout' | 'stderr'; readonly text: string } }
  | { readonly progress: { readonly id: number; readonly options: ProgressOptions } }
  | { readonly event: { readonly id: number; readonly event: TrainEvent } }
  | { readonly progressEnd: number }
  | { readonly memory: ThreadMemory }
  | { readonly outcome: TrainOutcome }
  | { readonly failed: ThreadError };

/** Messages to the thread. */
export type TrainerCommand = { readonly stop: unknown };

export interface TrainInThreadOptions {
  /** Told the thread's tfjs memory after each step. */
  readonly onMemory?: (memory: ThreadMemory) => void;
}

export function trainInThread(runner: JobRunnerRef, job: TrainJob, options: TrainInThreadOptions = {}): Promise<TrainOutcome> {
  const { stdout, stderr } = job.io;
  const data: TrainerThreadData = {
    runner,
    job: { config: job.config, configHash: job.configHash, runDir: job.runDir, resume: job.resume },
    io: { cwd: job.io.cwd, stdout: { isTTY: stdout.isTTY, columns: stdout.columns }, stderr: { isTTY: stderr.isTTY, columns: stderr.columns } },
  };
  // The thread loads the native addon; its OpenMP setting can only be made here, on the main thread.
  defaultOpenMpSpinning();
  const thread = new Thread(path.join(__dirname, 'run-trainer-thread.js'), { workerData: data });
  const progress = new Map<number, Subject<TrainEvent>>();
  const endProgress = () => {
    for (const subject of progress.values()) subject.complete();
    progress.clear();
  };
  const stop = () => thread.postMessage({ stop: job.stop.reason } satisfies TrainerCommand);
  if (job.stop.aborted) stop();
  else job.stop.addEventListener('abort', stop, { once: true });

  return new Promise<TrainOutcome>((resolve, reject) => {
    let settled = false;
    const settle = (result: { outcome: TrainOutcome } | { error: Error }) => {
      if (settled) return;
      settled = true;
      job.stop.removeEventListener('abort', stop);
      endProgress();
      // The job has returned (or the thread is gone): nothing of it is left to wait for.
      void thread.terminate().finally(() => ('outcome' in result ? resolve(result.outcome) : reject(result.error)));
    };
    thread.on('message', (report: TrainerReport) => {
      if ('write' in report) (report.write.stream === 'stdout' ? stdout : stderr).write(report.write.text);
      else if ('progress' in report) {
        const subject = new Subject<TrainEvent>();
        // This side's stages only print and record; a failure there must not go unnoticed, nor stop the run.
        subject.pipe(job.progress(report.progress.options)).subscribe({ error: (err: Error) => stderr.write(`cigl daemon: progress of this run failed: ${err.message}\n`) });
        progress.set(report.progress.id, subject);
      } else if ('event' in report) progress.get(report.event.id)?.next(report.event.event);
      else if ('progressEnd' in report) {
        progress.get(report.progressEnd)?.complete();
        progress.delete(report.progressEnd);
      } else if ('memory' in report) options.onMemory?.(report.memory);
      else if ('outcome' in report) settle({ outcome: report.outcome });
      else if ('failed' in report) settle({ error: reviveError(report.failed) });
    });
    thread.on('error', (err) => settle({ error: new Error(`the run's trainer thread crashed: ${err.message}`) }));
    thread.on('exit', (code) => settle({ error: new Error(`the run's trainer thread exited (code ${code}) before the run ended`) }));
  });
}

/** An error of the thread as the caller can tell it: a divergence as TrainingDiverged, others as Error with name and stack. */
export function reviveError(e: ThreadError): Error {
  const f = e.fields;
  if (e.name === 'TrainingDiverged') return new TrainingDiverged(f.step as number, f.loss as number, f.lr as number, f.what as string);
  return Object.assign(new Error(e.message), { name: e.name, stack: e.stack });
}

/** The thread's side of reviveError. */
export function threadError(err: unknown): ThreadError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(err)) if (['number', 'string', 'boolean'].includes(typeof value)) fields[key] = value;
  return { name: err.name, message: err.message, stack: err.stack, fields };
}
