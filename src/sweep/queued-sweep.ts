import * as path from 'node:path';
import { configHash, type RunConfig } from '../config/config';
import type { RunIo } from '../job/io';
import { RUN_ID_PATTERN } from '../daemon/run-id';
import { isTerminal, RunQueueError, type RunQueue, type RunRecord } from '../daemon/run-queue';
import type { RunSummary } from '../sinks/summary';
import { writeSweepOutputs } from './outputs';
import type { SweepRecord, SweepRecordRun } from './record';
import { pendingSweepRun } from './run-sweep';

/**
 * A sweep handed to daemons through a shared queue (`cigl sweep --queue redis://...`): every run of the
 * grid becomes one queued run whose id is `<sweep name>.<run name>` (its directory in the daemons'
 * shared runs folder). Enqueueing is idempotent: the same command again finds its runs queued (or
 * finished) and only waits. Waiting polls the queue (it survives a Redis restart), and when every run
 * has ended writes the sweep's record, comparison (Markdown and Arrow) and plot into the sweep
 * directory, from the summaries the daemons returned through the queue.
 */
export interface QueuedSweep {
  readonly dir: string;
  readonly runs: readonly RunConfig[];
  readonly command?: string;
}

/** The queue id of a sweep run: one path segment, so a valid run id. */
export function queuedRunId(sweepDir: string, runName: string): string {
  const id = `${path.basename(sweepDir)}.${runName}`;
  if (!RUN_ID_PATTERN.test(id)) throw new Error(`the sweep run id ${JSON.stringify(id)} is not a valid run id (at most 100 letters, digits, ".", "_" or "-"): shorten output.runName`);
  return id;
}

/** Queues every run not queued yet; returns the ids in sweep order. A run id queued with another config is an error. */
export async function enqueueSweep(queue: RunQueue, sweep: QueuedSweep, io: RunIo): Promise<string[]> {
  const ids: string[] = [];
  for (const config of sweep.runs) {
    const id = queuedRunId(sweep.dir, config.output.runName!);
    const hash = configHash(config);
    try {
      await queue.submit({ id, pipeline: 'train', config, configHash: hash });
      io.stderr.write(`sweep: queued ${id}\n`);
    } catch (err) {
      if (!(err instanceof RunQueueError && err.reason === 'duplicate')) throw err;
      const existing = (await queue.get(id))!;
      if (existing.configHash !== hash) {
        throw new Error(`run ${id} is in the queue with another configuration (hash ${existing.configHash.slice(0, 12)}, this one's is ${hash.slice(0, 12)}); give the sweep another output.runName`);
      }
      io.stderr.write(`sweep: ${id} is in the queue already (${existing.state})\n`);
    }
    ids.push(id);
  }
  return ids;
}

export interface SweepWait {
  readonly status: 'completed' | 'stopped';
  readonly records: readonly RunRecord[];
}

/** Polls until every run has ended (or `stop` aborts), reporting state changes on stderr. */
export async function waitForSweep(queue: RunQueue, ids: readonly string[], io: RunIo, stop: AbortSignal, pollMs = 1000): Promise<SweepWait> {
  const seen = new Map<string, string>();
  for (;;) {
    let records: RunRecord[];
    try {
      const all = new Map((await queue.list()).map((r) => [r.id, r]));
      records = ids.map((id) => all.get(id)).filter((r): r is RunRecord => r !== undefined);
    } catch (err) {
      io.stderr.write(`sweep: cannot read the queue (${(err as Error).message}); trying again\n`);
      records = [];
    }
    for (const r of records) {
      const line = `${r.state}${r.worker && r.state !== 'queued' ? ` on ${r.worker}` : ''}${r.attempts > 1 ? ` (attempt ${r.attempts})` : ''}`;
      if (seen.get(r.id) !== line) io.stderr.write(`sweep: ${r.id} ${line}${r.error && (r.state === 'failed' || r.state === 'diverged') ? `: ${r.error}` : ''}\n`);
      seen.set(r.id, line);
    }
    if (records.length === ids.length && records.every((r) => isTerminal(r.state))) return { status: 'completed', records };
    if (stop.aborted) return { status: 'stopped', records };
    await new Promise<void>((resolve) => {
      const wake = () => (clearTimeout(timer), resolve());
      const timer = setTimeout(() => (stop.removeEventListener('abort', wake), resolve()), pollMs);
      stop.addEventListener('abort', wake, { once: true });
    });
  }
}

/**
 * Writes the sweep directory's outputs for the runs' queue records and the summaries of the completed
 * ones (renamed to their sweep run names, as a local sweep names them); returns those summaries.
 */
export async function writeQueuedSweepOutputs(
  sweep: QueuedSweep,
  wait: SweepWait,
  summaryOf: (id: string) => Promise<RunSummary | undefined>,
): Promise<{ summaries: RunSummary[]; failures: { runName: string; error: string }[] }> {
  const byId = new Map(wait.records.map((r) => [r.id, r]));
  const summaries: RunSummary[] = [];
  const failures: { runName: string; error: string }[] = [];
  const runs: SweepRecordRun[] = [];
  for (const config of sweep.runs) {
    const runName = config.output.runName!;
    const record = byId.get(queuedRunId(sweep.dir, runName));
    const summary = record?.state === 'completed' ? await summaryOf(record.id) : undefined;
    if (summary) summaries.push({ ...summary, runName });
    const error = record?.state === 'failed' || record?.state === 'diverged' ? record.error ?? record.state : record?.state === 'cancelled' ? 'cancelled' : record?.state === 'completed' && !summary ? 'completed without a summary' : undefined;
    if (error !== undefined) failures.push({ runName, error });
    runs.push({ ...pendingSweepRun(config), ...(summary ? { state: 'completed' } : error !== undefined ? { state: 'failed', error } : {}) });
  }
  const status: SweepRecord['status'] = wait.status === 'completed' ? 'completed' : 'running';
  await writeSweepOutputs(sweep.dir, { format: 1, status, ...(sweep.command ? { command: sweep.command } : {}), runs }, summaries);
  return { summaries, failures };
}
