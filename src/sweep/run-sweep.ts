import * as fs from 'node:fs';
import * as path from 'node:path';
import { configHash, type RunConfig } from '../config/config';
import type { SweepFailure, SweepJob, SweepOutcome, TrainFunction, TrainOutcome } from '../job/jobs';
import { prepareRunDir, removeUnstartedRunDir, type RunDir } from '../sinks/run-dir';
import type { RunSummary } from '../sinks/summary';
import { labelOf } from './comparison';
import { writeSweepOutputs } from './outputs';
import { readRunSummary, SUMMARY_FILE, type SweepRecord, type SweepRecordRun } from './record';

/**
 * Runs the configurations of a sweep one after another with an injected `runOne` (the training job),
 * so that a sweep can be stopped and re-invoked:
 *
 * - a run whose directory already holds a summary.json of the same config hash finished earlier: its
 *   summary is reused, it is not trained again;
 * - a run whose directory exists without a summary was stopped or killed: it is resumed;
 * - a run that throws is recorded with its error message and the sweep goes on with the next one;
 * - `job.stop` (SIGINT/SIGTERM) ends the sweep after the current run (which stops at its next step and
 *   checkpoints, when runOne passes the signal on), with status 'stopped'.
 *
 * When a run starts and after every run, sweep.json, the comparison and the plot in `job.dir` are rewritten (atomically).
 */
export interface SweepRunContext {
  /** The run's directory: newly created, or reopened for a resume. */
  readonly runDir: RunDir;
  /** Continue the run from its newest checkpoint (its directory existed without a summary). */
  readonly resume: boolean;
  /** 0-based position in the sweep, and the number of runs. */
  readonly index: number;
  readonly total: number;
}

export type RunOne = (config: RunConfig, job: SweepJob, run: SweepRunContext) => Promise<TrainOutcome>;

export async function runSweep(job: SweepJob, runOne: RunOne): Promise<SweepOutcome> {
  const runs: SweepRecordRun[] = job.runs.map(pendingSweepRun);
  const summaries = new Map<number, RunSummary>();
  let status: SweepRecord['status'] = 'running';
  const save = () =>
    writeSweepOutputs(
      job.dir,
      { format: 1, status, ...(job.command ? { command: job.command } : {}), runs },
      [...summaries.entries()].sort(([a], [b]) => a - b).map(([, s]) => s),
    );
  const log = (text: string) => job.io.stderr.write(`sweep: ${text}\n`);
  await save();

  for (let i = 0; i < job.runs.length && status === 'running'; i++) {
    if (job.stop.aborted) {
      status = 'stopped';
      break;
    }
    const config = job.runs[i];
    const run = runs[i];
    const dir = path.join(config.output.runsDir, run.runName);
    const summaryFile = path.join(dir, SUMMARY_FILE);
    let started: { runDir: RunDir; resume: boolean } | undefined;
    try {
      if (fs.existsSync(summaryFile)) {
        const earlier = readRunSummary(summaryFile);
        if (earlier.configHash !== run.configHash) {
          throw new Error(
            `${summaryFile} is a finished run of another configuration (hash ${earlier.configHash.slice(0, 12)}, this run's is ${run.configHash.slice(0, 12)}); ` +
              'move it away or give the sweep another output.runName',
          );
        }
        summaries.set(i, earlier);
        runs[i] = { ...run, state: 'completed', reused: true };
        log(`run ${i + 1}/${runs.length} ${run.runName}: finished earlier, summary reused`);
        continue;
      }
      const resume = fs.existsSync(dir);
      const runDir = prepareRunDir(config, { resume });
      started = { runDir, resume };
      log(`run ${i + 1}/${runs.length} ${run.runName}${resume ? ' (resuming)' : ''}`);
      // Written before training so that sweep.json shows the run under way and the reused runs before it completed.
      runs[i] = { ...run, state: 'running' };
      await save();
      const outcome = await runOne(config, job, { runDir, resume, index: i, total: runs.length });
      if (outcome.status === 'stopped') {
        runs[i] = { ...run, state: 'stopped' };
        status = 'stopped';
      } else {
        const summary = outcome.summary ?? (fs.existsSync(runDir.paths.summary) ? readRunSummary(runDir.paths.summary) : undefined);
        if (!summary) throw new Error(`run completed without a summary (no ${runDir.paths.summary})`);
        summaries.set(i, summary);
        runs[i] = { ...run, state: 'completed' };
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      runs[i] = { ...run, state: 'failed', error: message };
      // A run that failed before training anything leaves no directory, so that a corrected sweep starts it afresh.
      const removed = started && !started.resume && removeUnstartedRunDir(started.runDir);
      log(`run ${i + 1}/${runs.length} ${run.runName} failed: ${message}${removed ? ' (nothing was trained; its directory was removed)' : ''}`);
    }
    await save();
  }
  if (status === 'running') status = 'completed';
  await save();
  const failures: SweepFailure[] = runs.flatMap((r) => (r.state === 'failed' ? [{ runName: r.runName, error: r.error ?? '' }] : []));
  return { status, summaries: [...summaries.entries()].sort(([a], [b]) => a - b).map(([, s]) => s), failures };
}

/**
 * The runOne of a real sweep: each run is a TrainJob of the CLI's train seam, with the sweep's stop
 * signal, progress and io. Wire as `sweep: (job) => runSweep(job, trainRunOne(train))`.
 */
export function trainRunOne(train: TrainFunction): RunOne {
  return (config, job, run) =>
    train({
      config,
      configHash: run.runDir.configHash,
      runDir: run.runDir,
      resume: run.resume,
      stop: job.stop,
      progress: (options) => job.progress({ epochs: config.train.epochs, ...options }),
      io: job.io,
    });
}

/** A sweep run's entry in sweep.json before it has run. */
export function pendingSweepRun(config: RunConfig): SweepRecordRun {
  const runName = runNameOf(config);
  return {
    runName,
    label: labelOf(runName, config.sparse.method),
    method: config.sparse.method,
    density: config.sparse.density,
    seed: config.seed,
    configHash: configHash(config),
    state: 'pending',
    config,
  };
}

function runNameOf(config: RunConfig): string {
  if (!config.output.runName) throw new Error(`a sweep run needs output.runName (runs of ${config.output.runsDir})`);
  return config.output.runName;
}
