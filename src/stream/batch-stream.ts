import { defer, finalize, type Observable } from 'rxjs';
import { normalizationTable, STANDARD_AUGMENT, type AugmentParams } from '../augment/augment';
import { MainThreadAugmenter } from '../augment/main-thread';
import { AugmentPool, type AugmentRunner } from '../augment/pool';
import type { AugmentTask } from '../augment/task';
import type { ChannelStats, ImageDataset } from '../data/types';
import type { Batch } from './batch';
import { checkPlan, epochPlan, type BatchPosition, type EpochPlanOptions, type PlannedBatch } from './epoch-plan';
import { orderedPrefetch } from './ordered-prefetch';

/** A failure while producing one batch; the stream errors with it. */
export class BatchError extends Error {
  constructor(
    readonly epoch: number,
    readonly index: number,
    cause: unknown,
  ) {
    super(`augmentation failed for batch (epoch ${epoch}, index ${index}): ${(cause as Error)?.message ?? cause}`, { cause });
    this.name = 'BatchError';
  }
}

/** Options both streams share. */
export interface StreamCommonOptions {
  /** The images to batch (the training part for batchStream; validation or test for evalStream). */
  readonly dataset: ImageDataset;
  /** Normalisation, from the training part (see channelStats). */
  readonly stats: ChannelStats;
  readonly batchSize: number;
  /**
   * Most batches produced or in production but not yet consumed (≥ 1, default 4): the stream's memory
   * bound. See `consumed` for asynchronous consumers.
   */
  readonly prefetch?: number;
  /**
   * Worker threads when the stream makes its own pool (default min(2, cores)); 0 augments on the main
   * thread (same batches, see MainThreadAugmenter).
   */
  readonly workers?: number;
  /**
   * A pool to use instead of making one; it must be bound to `dataset` (same images) and is left running
   * at the end. A pool the stream makes itself is destroyed when the subscription ends in any way.
   */
  readonly pool?: AugmentRunner;
  /**
   * For asynchronous consumers: emit once per batch fully consumed (in delivery order), e.g. a Subject
   * the training step calls `next()` on after the step's promise resolves. Without it a batch counts as
   * consumed when the subscriber's synchronous `next` returns, so `concatMap(async …)` downstream would
   * buffer every batch; with it the stream never has more than `prefetch` batches unacknowledged.
   */
  readonly consumed?: Observable<unknown>;
}

export interface BatchStreamOptions extends StreamCommonOptions {
  /** With epoch and batch index, fixes every shuffle and every augmentation draw. */
  readonly seed: number;
  /** Epochs in all: the stream completes after the last batch of epoch `epochs` − 1. Infinity: never. */
  readonly epochs: number;
  /** First batch to produce, for resuming; default { epoch: 0, index: 0 }. */
  readonly start?: BatchPosition;
  /** Crop padding and flip; default pad 4, flip on; false: normalise only. */
  readonly augment?: Partial<AugmentParams> | false;
  /** Drop an epoch's last, smaller batch. Default false. */
  readonly dropLast?: boolean;
}

/**
 * Training batches, augmented in worker threads: each epoch shuffled by Rng.derive(seed, 'shuffle',
 * epoch), each batch augmented by Rng.derive(seed, 'augment', epoch, index), delivered in order. The same
 * options give the same batches in the same order with any number of workers. Cold: each subscription
 * runs its own pass (and its own pool unless `pool` is given). Errors: a failed batch ends the stream with
 * a BatchError naming (epoch, index), after every earlier batch has been delivered.
 *
 * An asynchronous consumer acknowledges each batch, so memory stays bounded by `prefetch`:
 * ```ts
 * const consumed = new Subject<void>();
 * batchStream({ dataset, stats, batchSize: 128, seed, epochs, consumed }).pipe(
 *   concatMap(async (batch) => {
 *     const loss = await trainStep(batch);
 *     consumed.next(); // this batch is done: the stream may produce one more
 *     return loss;
 *   }),
 * );
 * ```
 */
export function batchStream(options: BatchStreamOptions): Observable<Batch> {
  const augment: AugmentParams | null = options.augment === false ? null : { ...STANDARD_AUGMENT, ...options.augment };
  const plan: EpochPlanOptions = {
    count: options.dataset.count,
    batchSize: options.batchSize,
    seed: options.seed,
    epochs: options.epochs,
    start: options.start ?? { epoch: 0, index: 0 },
    dropLast: options.dropLast ?? false,
    shuffle: true,
  };
  checkPlan(plan);
  return streamBatches(options, plan, augment);
}

export interface EvalStreamOptions extends StreamCommonOptions {
  /** The epoch number the batches carry (e.g. the training epoch being evaluated). Default 0. */
  readonly epoch?: number;
}

/** Evaluation batches: every image once, in data set order, normalised only (no shuffle, no augmentation). */
export function evalStream(options: EvalStreamOptions): Observable<Batch> {
  const epoch = options.epoch ?? 0;
  const plan: EpochPlanOptions = {
    count: options.dataset.count,
    batchSize: options.batchSize,
    seed: 0,
    epochs: epoch + 1,
    start: { epoch, index: 0 },
    dropLast: false,
    shuffle: false,
  };
  checkPlan(plan);
  return streamBatches(options, plan, null);
}

function streamBatches(options: StreamCommonOptions, plan: EpochPlanOptions, augment: AugmentParams | null): Observable<Batch> {
  const { dataset, stats } = options;
  normalizationTable(stats, dataset.channels); // bad statistics fail here, not in a worker
  const prefetch = options.prefetch ?? 4;
  if (!(Number.isInteger(prefetch) && prefetch >= 1)) throw new Error(`prefetch must be an integer ≥ 1, got ${prefetch}`);
  if (options.pool) checkPoolMatches(options.pool, dataset);
  return defer(() => {
    const owned = options.pool || options.workers === 0 ? undefined : new AugmentPool(dataset, { workers: options.workers });
    const runner = options.pool ?? owned ?? new MainThreadAugmenter(dataset);
    const produce = async (planned: PlannedBatch, signal: AbortSignal): Promise<Batch> => {
      const task: AugmentTask = {
        seed: plan.seed,
        epoch: planned.epoch,
        index: planned.index,
        indices: planned.indices,
        stats,
        augment,
      };
      let x: Float32Array;
      try {
        x = await runner.run(task, signal);
      } catch (err) {
        throw new BatchError(planned.epoch, planned.index, err);
      }
      const labels = new Int32Array(planned.indices.length);
      for (let i = 0; i < labels.length; i++) labels[i] = dataset.labels[planned.indices[i]];
      return {
        epoch: planned.epoch,
        index: planned.index,
        size: planned.indices.length,
        height: dataset.height,
        width: dataset.width,
        channels: dataset.channels,
        x,
        labels,
      };
    };
    return orderedPrefetch(() => epochPlan(plan), produce, {
      prefetch,
      consumed: options.consumed,
    }).pipe(
      finalize(() => {
        owned?.destroy().catch((err) => process.emitWarning(`augment pool teardown failed: ${(err as Error).message}`));
      }),
    );
  });
}

function checkPoolMatches(pool: AugmentRunner, dataset: ImageDataset): void {
  const b = pool.block;
  const sameShape =
    b.count === dataset.count && b.height === dataset.height && b.width === dataset.width && b.channels === dataset.channels;
  const sharedElsewhere = dataset.images.buffer instanceof SharedArrayBuffer && b.images.buffer !== dataset.images.buffer;
  if (!sameShape || sharedElsewhere) {
    throw new Error(`the given augment pool holds other images than ${dataset.source}; make the pool from this data set`);
  }
}
