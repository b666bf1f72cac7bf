import { filter, firstValueFrom, fromEvent, merge, timer, type Observable } from 'rxjs';
import { isTerminal, type RunQueue, type RunRecord } from './run-queue';

/**
 * The loop behind every live stream of a run: call `update` with the run's record now, then again after
 * each poll interval or change of the run, until the run reaches a terminal state (`update` is called a
 * last time with that record, so whatever the job wrote before it ended is read) or `signal` aborts
 * (client gone, daemon stopping). One update at a time: a slow client delays its own next read and
 * nothing piles up in memory. Resolves with the last record seen, or undefined if the run vanished.
 */
export interface FollowOptions {
  readonly queue: RunQueue;
  /** How often to look for new data when nothing announces it. */
  readonly pollMs: number;
  readonly signal: AbortSignal;
}

export async function followRun(id: string, options: FollowOptions, update: (record: RunRecord) => Promise<void>): Promise<RunRecord | undefined> {
  const { queue, pollMs, signal } = options;
  const changes$: Observable<unknown> = queue.changes$.pipe(filter((r) => r.id === id));
  let record: RunRecord | undefined;
  while (!signal.aborted) {
    // Subscribe before reading, so that a change during the update still wakes the next round.
    const wake = firstValueFrom(merge(timer(pollMs), changes$, fromEvent(signal, 'abort')), { defaultValue: undefined });
    record = await queue.get(id);
    if (!record) return undefined;
    await update(record);
    if (isTerminal(record.state)) return record;
    await wake;
  }
  return record;
}
