import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipe, type Subscription } from 'rxjs';
import type { RunIo, TextOutput } from '../job/io';
import type { RunConfig } from '../config/config';
import { reportProgress } from '../report/progress';
import type { TrainJob } from '../job/jobs';
import { listCheckpoints } from '../sinks/checkpoint';
import { prepareRunDir, runPaths } from '../sinks/run-dir';
import type { RunSummary } from '../sinks/summary';
import { readRunSummary } from '../sweep/record';
import { TrainingDiverged } from '../train/divergence';
import { runDirOf, type DaemonHome } from './daemon-home';
import type { RunActivity } from './run-activity';
import { dataPathProblem } from './run-request';
import type { RunQueue, RunRecord, RunResult } from './run-queue';
import { trainInThread, type JobRunnerRef } from './run-trainer';

/** A pipeline the daemon offers under a name: how it trains, and the config it implies. */
export interface DaemonPipeline {
  /** The job runner, loaded in each run's trainer thread (see run-trainer.ts). */
  readonly runner: JobRunnerRef;
  /** Config merged under the submitted config (the submitted values win). */
  readonly defaults?: Readonly<Record<string, unknown>>;
  readonly description?: string;
}

export interface RunSchedulerOptions {
  readonly queue: RunQueue;
  readonly home: DaemonHome;
  readonly pipelines: Readonly<Record<string, DaemonPipeline>>;
  /** Runs trained at the same time; default 1. */
  readonly concurrency?: number;
  /** This daemon's name in the queue (host:pid). */
  readonly worker: string;
  readonly activity: RunActivity;
  /**
   * Directories runs may read data from. A claimed run whose data.path lies elsewhere fails without
   * training (runs from a shared queue did not pass this daemon's request check). Absent: no check.
   */
  readonly dataRoots?: readonly string[];
  /** Daemon log lines. */
  readonly log: (line: string) => void;
}

/** What a run's job prints goes to `output.log` in its run directory. */
export const RUN_OUTPUT_LOG = 'output.log';

/**
 * Trains queued runs: claims the oldest while fewer than `concurrency` run, hands each to its pipeline
 * as a TrainJob in a trainer thread of its own (run-trainer.ts; resuming from the newest checkpoint when the run directory already exists, i.e. an
 * earlier attempt was interrupted), and settles it in the queue with how it ended. Cancelling a running
 * run, and stopping the daemon, abort the job's stop signal: the job finishes its step, checkpoints and
 * returns 'stopped', which settles as cancelled or as interrupted (back to the queue) respectively.
 */
export class RunScheduler {
  private readonly concurrency: number;
  private readonly active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private stopping = false;
  private pumping = false;
  private pumpAgain = false;
  private subscription?: Subscription;

  constructor(private readonly options: RunSchedulerOptions) {
    this.concurrency = options.concurrency ?? 1;
    if (!(Number.isInteger(this.concurrency) && this.concurrency >= 1)) throw new Error(`concurrency must be an integer >= 1, got ${this.concurrency}`);
  }

  start(): void {
    this.subscription = this.options.queue.changes$.subscribe((record) => {
      if (record.state === 'queued') void this.pump();
      if (record.state === 'running' && record.cancelRequested) this.active.get(record.id)?.controller.abort('cancel');
    });
    // Another worker may be resuming it already: stop at once (the settle that follows is refused and logged).
    const lost = this.options.queue.claimLost$?.subscribe((id) => {
      this.options.log(`run ${id}: this daemon lost its claim (lock expired); stopping it`);
      this.active.get(id)?.controller.abort('lost');
    });
    if (lost) this.subscription.add(lost);
    void this.pump();
  }

  /** Ids of the runs this daemon is training. */
  get running(): string[] {
    return [...this.active.keys()];
  }

  /** Claims no more runs, stops the running ones (they checkpoint) and waits until they are settled. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.subscription?.unsubscribe();
    for (const { controller } of this.active.values()) controller.abort('shutdown');
    await Promise.all([...this.active.values()].map((a) => a.done));
  }

  /** Fills free slots with queued runs. One pump at a time, so claims never exceed the concurrency. */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        while (!this.stopping && this.active.size < this.concurrency) {
          const record = await this.options.queue.claim(this.options.worker);
          if (!record) break;
          this.launch(record);
        }
      } while (this.pumpAgain && !this.stopping);
    } catch (err) {
      this.options.log(`cannot claim a run: ${(err as Error).message}`);
    } finally {
      this.pumping = false;
    }
  }

  private launch(record: RunRecord): void {
    const controller = new AbortController();
    const done = this.execute(record, controller.signal)
      .then((result) => this.options.queue.settle(record.id, result))
      .then(
        (settled) => this.options.log(`run ${record.id} ${settled.state}${settled.error ? `: ${settled.error}` : ''}`),
        (err: Error) => this.options.log(`run ${record.id}: cannot settle: ${err.message}`),
      )
      .finally(() => {
        this.active.delete(record.id);
        this.options.activity.forget(record.id);
        void this.pump();
      });
    this.active.set(record.id, { controller, done });
  }

  private async execute(record: RunRecord, stop: AbortSignal): Promise<RunResult> {
    const { home, activity, log } = this.options;
    const pipeline = this.options.pipelines[record.pipeline];
    if (!pipeline) return { kind: 'failed', error: `unknown pipeline ${JSON.stringify(record.pipeline)}` };
    const dataProblem = this.options.dataRoots && dataPathProblem(record.config.data.path, this.options.dataRoots);
    if (dataProblem) return { kind: 'failed', error: `refused by ${this.options.worker}: data.path ${dataProblem}` };
    const dir = runDirOf(home, record.id);
    // At-least-once delivery: a worker that finished a run and died before settling it hands it on; never train it twice.
    const finished = finishedSummary(dir, record.configHash);
    if (finished) {
      log(`run ${record.id} finished earlier (its summary.json exists): not trained again`);
      return { kind: 'completed', step: finished.step, summary: finished.summary };
    }
    // An earlier attempt created the directory: continue it from its newest checkpoint.
    const resume = fs.existsSync(runPaths(dir).config);
    const config: RunConfig = { ...record.config, output: { runsDir: home.runsDir, runName: record.id } };
    const cancelled = () => stop.aborted && stop.reason === 'cancel';
    log(`run ${record.id} ${resume ? `resuming (attempt ${record.attempts})` : 'starting'} with pipeline ${record.pipeline}`);
    try {
      const runDir = prepareRunDir(config, { resume });
      const io = runOutput(path.join(dir, RUN_OUTPUT_LOG), dir, log);
      const job: TrainJob = {
        config,
        configHash: record.configHash,
        runDir,
        resume,
        stop,
        progress: (options) => pipe(reportProgress(io.stdout, { epochs: config.train.epochs, ...options }), activity.track(record.id)),
        io,
      };
      const outcome = await trainInThread(pipeline.runner, job, { onMemory: (memory) => activity.recordMemory(record.id, memory) });
      if (outcome.status === 'completed') return { kind: 'completed', step: outcome.step, summary: outcome.summary ?? finishedSummary(dir, record.configHash)?.summary };
      if (!stop.aborted) return { kind: 'failed', error: 'the pipeline stopped without being asked to', step: outcome.step };
      return cancelled() ? { kind: 'cancelled', step: outcome.step } : { kind: 'interrupted', step: outcome.step };
    } catch (err) {
      if (cancelled()) return { kind: 'cancelled' };
      if (err instanceof TrainingDiverged) return { kind: 'diverged', error: err.message, step: err.step };
      return { kind: 'failed', error: (err as Error).message };
    }
  }
}

/**
 * The summary of a run directory that finished with this config, and its final step (from the newest
 * checkpoint; summaries do not record it). A summary of another config is left to the job to refuse.
 */
function finishedSummary(dir: string, configHash: string): { summary: RunSummary; step: number } | undefined {
  const file = runPaths(dir).summary;
  if (!fs.existsSync(file)) return undefined;
  let summary: RunSummary;
  try {
    summary = readRunSummary(file);
  } catch {
    return undefined; // not a finished run's summary (damaged, or some other job's format): train it
  }
  if (summary.configHash !== configHash) return undefined;
  return { summary, step: listCheckpoints(runPaths(dir).checkpoints)[0]?.step ?? 0 };
}

/**
 * A RunIo whose stdout and stderr append to one file (created on the first write). The file is a
 * convenience: when it cannot be written (a full disk), the run goes on, and the daemon log says so once.
 */
function runOutput(file: string, cwd: string, log: (line: string) => void): RunIo {
  let failed = false;
  const write = (text: string) => {
    if (failed) return;
    try {
      fs.appendFileSync(file, text);
    } catch (err) {
      failed = true;
      log(`cannot write ${file} (${(err as Error).message}); the run's output goes unrecorded`);
    }
  };
  const out: TextOutput = { write, isTTY: false };
  return { stdout: out, stderr: out, cwd };
}
