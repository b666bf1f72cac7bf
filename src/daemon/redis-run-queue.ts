import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, QueueEventsProducer, UnrecoverableError, Worker, type Job } from 'bullmq';
import Redis from 'ioredis';
import { Subject, type Observable } from 'rxjs';
import { parseRunSummary, type RunSummary } from '../sinks/summary';
import { LockKeeper } from './lock-keeper';
import { assertRedisReachable, redactedUrl, redisOptionsFromUrl } from './redis-connection';
import { RunQueueError, type RunQueue, type RunRecord, type RunRequest, type RunResult, type RunState } from './run-queue';

/**
 * The distributed RunQueue: BullMQ on Redis, every daemon a worker of one queue. The mapping (see
 * run-queue.ts) with BullMQ's own machinery doing the hard parts:
 *
 * - submit  → Queue.add with jobId = run id (a used id is refused) and `attempts` for the retry limit;
 * - claim   → Worker.getNextJob(token) in manual mode; a thread renews the job's lock every half
 *             lockDuration until settle (lock-keeper.ts: training may keep the event loop busy). A
 *             daemon that dies stops renewing: the stalled-job checker (run by every daemon) moves the
 *             job back to wait after the lock expires, and the next claim resumes it from the
 *             checkpoint in the shared runs directory;
 * - settle  → moveToCompleted (the step and summary as return value) / moveToFailed (BullMQ retries
 *             until `attempts` are spent, then the run is failed with its error; a diverged run is
 *             failed at once, its reason marked) / moveToWait (interrupted: a graceful stop, which uses
 *             up no attempt: the count of started attempts is taken back);
 * - cancel  → a queued job is removed and remembered as cancelled (a hash beside the queue); an active
 *             one gets `cancelRequested` in its data and a 'cancel-requested' event that its worker sees;
 * - changes$→ QueueEvents (shared by all daemons); claimLost$ → a lock renewal that Redis refuses: the
 *             run's lock expired (this daemon stalled), another daemon may own it now, so stop training it.
 */
export interface RedisRunQueueOptions {
  /** redis://HOST:PORT */
  readonly url: string;
  /** BullMQ queue name; default 'cigl-runs'. Daemons and sweeps meet on the same name. */
  readonly name?: string;
  /** How long a claim survives without renewal (a dead daemon's run waits this long); default 30 s. */
  readonly lockDurationMs?: number;
  /** Attempts of runs submitted through this queue before they are failed; default 3. */
  readonly attempts?: number;
  /** How often a daemon whose lock expired may lose the same run before it is failed; default 5. */
  readonly maxStalls?: number;
  /** How often the queue is polled for waiting runs besides the events (events can be missed across a Redis restart); default 1 s. */
  readonly pollMs?: number;
}

/** Data of a job: the run request, plus a cancel flag set while it runs. */
type RunJobData = RunRequest & { readonly cancelRequested?: boolean };
/** Return value of a completed job. */
interface RunJobResult {
  readonly step: number;
  readonly summary?: RunSummary;
}
type RunJob = Job<RunJobData, RunJobResult>;

export const DEFAULT_QUEUE_NAME = 'cigl-runs';
export const DEFAULT_ATTEMPTS = 3;
export const DEFAULT_LOCK_MS = 30_000;
const CANCELLED_REASON = 'cancelled';
/** Starts the failed reason of a diverged run (which BullMQ keeps as a plain failure). */
const DIVERGED_MARK = '[diverged] ';
const CANCEL_EVENT = 'cancel-requested';
const BULL_PREFIX = 'bull';
const QUEUED_STATES = ['waiting', 'prioritized', 'delayed', 'waiting-children'] as const;
const ALL_STATES = ['active', ...QUEUED_STATES, 'completed', 'failed'] as const;

interface HeldRun {
  readonly job: RunJob;
  readonly token: string;
}

export class RedisRunQueue implements RunQueue {
  private readonly changes = new Subject<RunRecord>();
  readonly changes$: Observable<RunRecord> = this.changes.asObservable();
  private readonly lostClaims = new Subject<string>();
  readonly claimLost$: Observable<string> = this.lostClaims.asObservable();
  private readonly workers = new Map<string, Worker<RunJobData, RunJobResult>>();
  private readonly held = new Map<string, HeldRun>();
  private readonly cancelledKey: string;
  private poll?: NodeJS.Timeout;
  /** Renews the locks of held runs (from a thread, see lock-keeper.ts); started with the first worker. */
  private locks?: LockKeeper;
  private closed = false;

  private constructor(
    private readonly options: Required<RedisRunQueueOptions>,
    private readonly queue: Queue,
    private readonly events: QueueEvents,
    private readonly producer: QueueEventsProducer,
    /** Plain commands beside BullMQ's: the cancelled-runs hash. */
    private readonly redis: Redis,
  ) {
    this.cancelledKey = `${BULL_PREFIX}:${options.name}:cigl-cancelled`;
    const forward = ({ jobId }: { jobId: string }) => void this.emitCurrent(jobId);
    for (const event of ['waiting', 'active', 'completed', 'failed', 'stalled', 'removed'] as const) this.events.on(event, forward);
    (this.events as unknown as NodeJS.EventEmitter).on(CANCEL_EVENT, forward);
    this.events.on('error', () => undefined); // reconnects by itself; the poll covers missed events
    this.queue.on('error', () => undefined);
    (this.producer as unknown as NodeJS.EventEmitter).on('error', () => undefined);
  }

  /** Connects (failing fast, naming the URL, when Redis is unreachable) and opens the queue. */
  static async open(options: RedisRunQueueOptions): Promise<RedisRunQueue> {
    const resolved: Required<RedisRunQueueOptions> = {
      name: DEFAULT_QUEUE_NAME,
      lockDurationMs: DEFAULT_LOCK_MS,
      attempts: DEFAULT_ATTEMPTS,
      maxStalls: 5,
      pollMs: 1000,
      ...options,
    };
    if (!(Number.isInteger(resolved.attempts) && resolved.attempts >= 1)) throw new Error(`attempts must be an integer >= 1, got ${resolved.attempts}`);
    if (!(resolved.lockDurationMs >= 100)) throw new Error(`lockDurationMs must be at least 100, got ${resolved.lockDurationMs}`);
    await assertRedisReachable(resolved.url);
    const connection = redisOptionsFromUrl(resolved.url);
    const queue = new Queue(resolved.name, { connection, prefix: BULL_PREFIX });
    const events = new QueueEvents(resolved.name, { connection, prefix: BULL_PREFIX });
    const producer = new QueueEventsProducer(resolved.name, { connection, prefix: BULL_PREFIX });
    const redis = new Redis(connection);
    redis.on('error', () => undefined); // reconnects by itself; commands wait
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady(), producer.waitUntilReady()]);
    return new RedisRunQueue(resolved, queue, events, producer, redis);
  }

  get url(): string {
    return redactedUrl(this.options.url);
  }

  async submit(request: RunRequest): Promise<RunRecord> {
    this.assertOpen();
    if ((await this.queue.getJob(request.id)) || (await this.cancelledRecord(request.id))) {
      throw new RunQueueError(`a run with id ${request.id} already exists`, 'duplicate');
    }
    const job = (await this.queue.add(request.pipeline, request, {
      jobId: request.id,
      attempts: this.options.attempts,
      removeOnComplete: false,
      removeOnFail: false,
    })) as RunJob;
    return recordOf(job, 'queued');
  }

  async get(id: string): Promise<RunRecord | undefined> {
    const job = (await this.queue.getJob(id)) as RunJob | undefined;
    if (job) return recordOf(job, stateOf(await job.getState(), job));
    return this.cancelledRecord(id);
  }

  async list(): Promise<readonly RunRecord[]> {
    const records: RunRecord[] = [];
    for (const type of ALL_STATES) {
      for (const job of (await this.queue.getJobs([type], 0, -1, true)) as RunJob[]) {
        if (job) records.push(recordOf(job, stateOf(type, job)));
      }
    }
    const cancelled = await this.redis.hvals(this.cancelledKey);
    records.push(...cancelled.map((text) => JSON.parse(text) as RunRecord));
    const seen = new Set<string>();
    return records
      .filter((r) => (seen.has(r.id) ? false : (seen.add(r.id), true))) // a job moving between lists while listed
      .sort((a, b) => a.submittedAt.localeCompare(b.submittedAt) || a.id.localeCompare(b.id));
  }

  /** Counts by BullMQ state, for the dashboard and /metrics. */
  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
  }

  async claim(worker: string): Promise<RunRecord | undefined> {
    this.assertOpen();
    const token = `${worker}:${randomUUID()}`;
    const bullWorker = this.workerFor(worker);
    await this.locks!.ready;
    const job = (await bullWorker.getNextJob(token, { block: false })) as RunJob | undefined;
    if (!job) return undefined;
    this.held.set(job.id!, { job, token });
    this.locks!.hold(job.id!, token);
    const record = recordOf(job, 'running');
    this.changes.next(record);
    return record;
  }

  async settle(id: string, result: RunResult): Promise<RunRecord> {
    this.assertOpen();
    const held = this.held.get(id);
    if (!held) throw new RunQueueError(`run ${id} is not held by this daemon: it cannot be settled`, 'state');
    this.release(id);
    const { job, token } = held;
    try {
      switch (result.kind) {
        case 'completed':
          await job.moveToCompleted({ step: result.step, ...(result.summary ? { summary: result.summary } : {}) }, token, false);
          break;
        case 'failed':
          await job.moveToFailed(new Error(result.error), token, false); // retried while attempts are left
          break;
        case 'diverged':
          // Deterministic: another attempt would diverge at the same step.
          await job.moveToFailed(new UnrecoverableError(`${DIVERGED_MARK}${result.error}`), token, false);
          break;
        case 'cancelled':
          await job.moveToFailed(new UnrecoverableError(CANCELLED_REASON), token, false);
          break;
        case 'interrupted':
          await job.moveToWait(token);
          // Claiming counted an attempt started ("ats"); a graceful stop gives it back. After the move, so
          // that a claim by another daemon in between is counted too.
          await this.redis.hincrby(`${BULL_PREFIX}:${this.options.name}:${id}`, 'ats', -1);
          break;
      }
    } catch (err) {
      throw new RunQueueError(`run ${id}: this daemon no longer holds it (its lock expired; another daemon may have taken it over): ${(err as Error).message}`, 'state');
    }
    const record = (await this.get(id))!;
    this.changes.next(record);
    return record;
  }

  async cancel(id: string): Promise<RunRecord | undefined> {
    this.assertOpen();
    const job = (await this.queue.getJob(id)) as RunJob | undefined;
    if (!job) return this.cancelledRecord(id);
    const state = stateOf(await job.getState(), job);
    if (state === 'queued') {
      try {
        await job.remove();
        const record: RunRecord = { ...recordOf(job, 'cancelled'), finishedAt: new Date().toISOString() };
        await this.redis.hset(this.cancelledKey, id, JSON.stringify(record));
        this.changes.next(record);
        return record;
      } catch {
        // claimed meanwhile (a locked job cannot be removed): cancel it as a running one
      }
    }
    const current = (await this.get(id))!;
    if (current.state !== 'running' || current.cancelRequested) return current;
    await job.updateData({ ...job.data, cancelRequested: true });
    await this.producer.publishEvent({ eventName: CANCEL_EVENT, jobId: id });
    return { ...current, cancelRequested: true };
  }

  /** The summary a completed run returned, if it did. */
  async summaryOf(id: string): Promise<RunSummary | undefined> {
    const job = (await this.queue.getJob(id)) as RunJob | undefined;
    const summary: unknown = job?.returnvalue?.summary;
    // A daemon of another version may have returned it: checked (and upgraded) like a summary.json.
    return summary === undefined ? undefined : parseRunSummary(summary, `the summary queued run ${id} returned`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    for (const id of [...this.held.keys()]) this.release(id);
    await this.locks?.close();
    await Promise.all([...this.workers.values()].map((w) => w.close(true)));
    await Promise.all([this.events.close(), this.producer.close(), this.queue.close()]);
    this.redis.disconnect();
    this.changes.complete();
    this.lostClaims.complete();
  }

  private startLockKeeper(): LockKeeper {
    const keeper = new LockKeeper({ url: this.options.url, queueName: this.options.name, prefix: BULL_PREFIX, lockDurationMs: this.options.lockDurationMs });
    keeper.lost$.subscribe((id) => {
      if (!this.held.delete(id)) return;
      this.lostClaims.next(id);
    });
    return keeper;
  }

  /** The BullMQ worker for this daemon: created on the first claim, it also runs the stalled-job checker. */
  private workerFor(name: string): Worker<RunJobData, RunJobResult> {
    let worker = this.workers.get(name);
    if (!worker) {
      const { lockDurationMs, maxStalls } = this.options;
      worker = new Worker<RunJobData, RunJobResult>(this.options.name, null, {
        connection: redisOptionsFromUrl(this.options.url),
        prefix: BULL_PREFIX,
        name,
        autorun: false,
        lockDuration: lockDurationMs,
        stalledInterval: Math.max(50, Math.round(lockDurationMs / 2)),
        maxStalledCount: maxStalls,
      });
      worker.on('error', () => undefined); // connection errors: ioredis reconnects, commands wait
      void worker.startStalledCheckTimer();
      this.locks ??= this.startLockKeeper();
      this.workers.set(name, worker);
      this.poll ??= setInterval(() => void this.pollWaiting(), this.options.pollMs);
    }
    return worker;
  }

  private release(id: string): void {
    if (!this.held.delete(id)) return;
    this.locks?.release(id);
  }

  private async pollWaiting(): Promise<void> {
    try {
      const [oldest] = (await this.queue.getJobs(['waiting', 'prioritized'], 0, 0, true)) as RunJob[];
      if (oldest && !this.closed) this.changes.next(recordOf(oldest, 'queued'));
    } catch {
      // Redis restarting: next tick
    }
  }

  private async emitCurrent(id: string): Promise<void> {
    try {
      const record = await this.get(id);
      if (record && !this.closed) this.changes.next(record);
    } catch {
      // the next event or poll reports it
    }
  }

  private async cancelledRecord(id: string): Promise<RunRecord | undefined> {
    const text = await this.redis.hget(this.cancelledKey, id);
    return text ? (JSON.parse(text) as RunRecord) : undefined;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the run queue is closed');
  }
}

function stateOf(bullState: string, job: RunJob): RunState {
  if (bullState === 'active') return 'running';
  if (bullState === 'completed') return 'completed';
  if (bullState === 'failed') return job.failedReason === CANCELLED_REASON ? 'cancelled' : job.failedReason?.startsWith(DIVERGED_MARK) ? 'diverged' : 'failed';
  return 'queued';
}

function recordOf(job: RunJob, state: RunState): RunRecord {
  const { id, pipeline, config, configHash, cancelRequested } = job.data;
  const attempts = job.attemptsStarted ?? 0;
  const record: RunRecord = {
    id,
    pipeline,
    config,
    configHash,
    state,
    submittedAt: new Date(job.timestamp).toISOString(),
    ...(job.processedOn ? { startedAt: new Date(job.processedOn).toISOString() } : {}),
    ...(job.finishedOn && (state === 'completed' || state === 'failed' || state === 'cancelled') ? { finishedAt: new Date(job.finishedOn).toISOString() } : {}),
    attempts,
    ...(job.processedBy ? { worker: job.processedBy } : {}),
    // Claimed before (a graceful stop gives its attempt back, so the count alone cannot tell).
    ...(state === 'queued' && job.processedOn ? { interrupted: true } : {}),
    ...(cancelRequested && state === 'running' ? { cancelRequested: true } : {}),
    ...(job.returnvalue?.step !== undefined ? { step: job.returnvalue.step } : {}),
    ...(job.failedReason && state !== 'completed' && state !== 'cancelled' ? { error: job.failedReason.replace(DIVERGED_MARK, '') } : {}),
  };
  return record;
}
