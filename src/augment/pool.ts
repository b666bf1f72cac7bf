import * as os from 'node:os';
import Piscina from 'piscina';
import { withSharedPixels } from '../data/shared-memory';
import type { ImageDataset } from '../data/types';
import { workerPath } from '../util/worker-path';
import type { ImageBlock } from './augment';
import type { AugmentTask } from './task';

/** What the batch stream needs from a pool of augmentation workers. */
export interface AugmentRunner {
  /** The images every task's indices refer to. */
  readonly block: ImageBlock;
  /** Runs one task; aborting `signal` drops it from the queue (a running task finishes, unused). */
  run(task: AugmentTask, signal?: AbortSignal): Promise<Float32Array>;
}

export interface AugmentPoolOptions {
  /** Worker threads. Default: min(2, available cores). */
  readonly workers?: number;
}

/**
 * Piscina worker threads bound to one data set: its pixels go to the workers once, at creation, as shared
 * memory (readers already allocate them shared; anything else is copied into shared memory once here).
 * Tasks carry indices and parameters; results come back transferred, not copied.
 */
export class AugmentPool implements AugmentRunner {
  readonly block: ImageBlock;
  readonly workers: number;
  private readonly piscina: Piscina<AugmentTask, Float32Array>;
  private destroyed?: Promise<void>;

  constructor(dataset: ImageDataset, options: AugmentPoolOptions = {}) {
    const workers = options.workers ?? Math.min(2, os.availableParallelism());
    if (!(Number.isInteger(workers) && workers >= 1)) throw new Error(`augment workers must be an integer ≥ 1, got ${workers}`);
    const shared = withSharedPixels(dataset);
    this.block = {
      images: shared.images,
      count: shared.count,
      height: shared.height,
      width: shared.width,
      channels: shared.channels,
    };
    this.workers = workers;
    this.piscina = new Piscina({
      filename: workerPath('augment'),
      minThreads: workers,
      maxThreads: workers,
      workerData: this.block,
    });
  }

  run(task: AugmentTask, signal?: AbortSignal): Promise<Float32Array> {
    if (this.destroyed) return Promise.reject(new Error('augment pool already destroyed'));
    return this.piscina.run(task, { signal });
  }

  /** Stops the worker threads (queued tasks are rejected); safe to call more than once. */
  destroy(): Promise<void> {
    this.destroyed ??= this.piscina.destroy();
    return this.destroyed;
  }
}
