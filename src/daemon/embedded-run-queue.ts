import * as fs from 'node:fs';
import { Subject, type Observable } from 'rxjs';
import { writeJsonAtomic } from '../sinks/atomic-file';
import { isRunId } from './run-id';
import { isTerminal, RunQueueError, type RunQueue, type RunRecord, type RunRequest, type RunResult, type RunState } from './run-queue';

/**
 * The default RunQueue: runs in memory, in submission order, with every change written to one JSON file
 * (atomically: a crash leaves the previous or the new state, never a torn one) before it is reported.
 * One daemon owns the file (see lockDaemonHome), so a run found `running` when the file is opened was
 * running in a daemon that is gone: it goes back to the queue, marked interrupted, to be resumed.
 */
const FORMAT = 'cigl-daemon-queue';
const VERSION = 1;
const STATES: readonly RunState[] = ['queued', 'running', 'completed', 'failed', 'diverged', 'cancelled'];

interface QueueFile {
  readonly format: typeof FORMAT;
  readonly version: typeof VERSION;
  readonly runs: readonly RunRecord[];
}

export class EmbeddedRunQueue implements RunQueue {
  private readonly runs: RunRecord[];
  private readonly changes = new Subject<RunRecord>();
  readonly changes$: Observable<RunRecord> = this.changes.asObservable();
  private closed = false;

  private constructor(
    private readonly file: string,
    runs: RunRecord[],
    private readonly now: () => Date,
  ) {
    this.runs = runs;
  }

  /** Opens (or creates) the queue persisted in `file`, requeueing runs a dead daemon left running. */
  static open(file: string, options: { now?: () => Date } = {}): EmbeddedRunQueue {
    const runs = fs.existsSync(file) ? readQueueFile(file) : [];
    const queue = new EmbeddedRunQueue(file, runs, options.now ?? (() => new Date()));
    let recovered = false;
    queue.runs.forEach((run, i) => {
      if (run.state === 'running') {
        queue.runs[i] = { ...run, state: 'queued', interrupted: true, worker: undefined };
        recovered = true;
      }
    });
    if (recovered || !fs.existsSync(file)) queue.persist();
    return queue;
  }

  async submit(request: RunRequest): Promise<RunRecord> {
    this.assertOpen();
    if (this.find(request.id)) throw new RunQueueError(`a run with id ${request.id} already exists`, 'duplicate');
    const record: RunRecord = { ...request, state: 'queued', submittedAt: this.now().toISOString(), attempts: 0 };
    this.runs.push(record);
    this.commit(record);
    return record;
  }

  async get(id: string): Promise<RunRecord | undefined> {
    return this.find(id);
  }

  async list(): Promise<readonly RunRecord[]> {
    return [...this.runs];
  }

  async claim(worker: string): Promise<RunRecord | undefined> {
    this.assertOpen();
    const next = this.runs.find((r) => r.state === 'queued');
    if (!next) return undefined;
    return this.replace(next, {
      state: 'running',
      worker,
      attempts: next.attempts + 1,
      startedAt: next.startedAt ?? this.now().toISOString(),
    });
  }

  async settle(id: string, result: RunResult): Promise<RunRecord> {
    this.assertOpen();
    const run = this.find(id);
    if (!run) throw new RunQueueError(`no run ${id}`, 'unknown');
    if (run.state !== 'running') throw new RunQueueError(`run ${id} is ${run.state}, not running: it cannot be settled`, 'state');
    const step = result.step ?? run.step;
    switch (result.kind) {
      case 'interrupted':
        // A graceful stop uses up no attempt.
        return this.replace(run, { state: 'queued', interrupted: true, step, worker: undefined, attempts: Math.max(0, run.attempts - 1) });
      case 'failed':
      case 'diverged':
        return this.replace(run, { state: result.kind, error: result.error, step, finishedAt: this.now().toISOString(), interrupted: undefined });
      case 'completed':
      case 'cancelled':
        return this.replace(run, { state: result.kind, step, finishedAt: this.now().toISOString(), interrupted: undefined });
    }
  }

  async cancel(id: string): Promise<RunRecord | undefined> {
    this.assertOpen();
    const run = this.find(id);
    if (!run || isTerminal(run.state)) return run;
    if (run.state === 'queued') return this.replace(run, { state: 'cancelled', finishedAt: this.now().toISOString(), interrupted: undefined });
    return run.cancelRequested ? run : this.replace(run, { cancelRequested: true });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.changes.complete();
  }

  private find(id: string): RunRecord | undefined {
    return this.runs.find((r) => r.id === id);
  }

  private replace(run: RunRecord, change: Partial<RunRecord>): RunRecord {
    const updated = dropUndefined({ ...run, ...change });
    this.runs[this.runs.indexOf(run)] = updated;
    this.commit(updated);
    return updated;
  }

  private commit(record: RunRecord): void {
    this.persist();
    this.changes.next(record);
  }

  private persist(): void {
    const content: QueueFile = { format: FORMAT, version: VERSION, runs: this.runs };
    writeJsonAtomic(this.file, content);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the run queue is closed');
  }
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function readQueueFile(file: string): RunRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the daemon queue ${file}: ${(err as Error).message}`);
  }
  const q = parsed as Partial<QueueFile>;
  if (typeof q !== 'object' || q === null || q.format !== FORMAT || q.version !== VERSION || !Array.isArray(q.runs)) {
    throw new Error(`${file} is not a version ${VERSION} ${FORMAT} file`);
  }
  q.runs.forEach((run, i) => {
    const r = run as Partial<RunRecord>;
    const bad = (what: string) => new Error(`${file}: runs[${i}] ${what}`);
    if (typeof r !== 'object' || r === null) throw bad('is not an object');
    if (!isRunId(r.id)) throw bad(`has an invalid id ${JSON.stringify(r.id)}`);
    if (!STATES.includes(r.state as RunState)) throw bad(`has an invalid state ${JSON.stringify(r.state)}`);
    if (typeof r.pipeline !== 'string' || typeof r.config !== 'object' || r.config === null) throw bad('lacks its pipeline or config');
    if (!Number.isInteger(r.attempts)) throw bad('lacks attempts');
  });
  const ids = new Set<string>();
  for (const r of q.runs) {
    if (ids.has(r.id)) throw new Error(`${file}: run id ${r.id} appears twice`);
    ids.add(r.id);
  }
  return [...q.runs];
}
