import type { RunRecord, RunState } from './run-queue';

/**
 * The queue as a whole, seen from one daemon: runs by state, and per worker (daemon) the runs it is
 * training and has finished. With a shared queue every daemon reports the same numbers: the whole
 * fleet's. Served as `GET /queue` (JSON), in `GET /metrics` and on the dashboard.
 */
export interface QueueStatus {
  /** 'embedded' (this daemon's queue file) or the shared queue's URL without its password. */
  readonly queue: string;
  /** This daemon's worker name, as `worker` below names it. */
  readonly worker: string;
  readonly runs: Readonly<Record<RunState, number>>;
  /** Workers that hold or held a run, by name (host:pid), with their runs by state. */
  readonly workers: readonly { readonly worker: string; readonly runs: Readonly<Record<RunState, number>> }[];
}

export function emptyStateCounts(): Record<RunState, number> {
  return { queued: 0, running: 0, completed: 0, failed: 0, diverged: 0, cancelled: 0 };
}

export function queueStatus(queue: string, worker: string, records: readonly RunRecord[]): QueueStatus {
  const runs = emptyStateCounts();
  const byWorker = new Map<string, Record<RunState, number>>();
  for (const r of records) {
    runs[r.state]++;
    // A queued run's worker is the one that held it last: it counts for nobody now.
    if (r.worker === undefined || r.state === 'queued') continue;
    if (!byWorker.has(r.worker)) byWorker.set(r.worker, emptyStateCounts());
    byWorker.get(r.worker)![r.state]++;
  }
  const workers = [...byWorker.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, counts]) => ({ worker: name, runs: counts }));
  return { queue, worker, runs, workers };
}
