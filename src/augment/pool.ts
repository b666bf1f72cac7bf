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
  /** Runs one task; aborting `signal` drops it if it is still waiting (a running task finishes, unused). */
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
 *
 * Tasks wait in this pool's own queue and go to piscina only when a thread is free, so cancelling
 * (aborting a task's signal) just drops a waiting task: a running one is never interrupted, since
 * piscina would answer that by killing and respawning the thread.
 */
export class AugmentPool implements AugmentRunner {
  readonly block: ImageBlock;
  readonly workers: number;
  private readonly piscina: Piscina<AugmentTask, Float32Array>;
  private readonly waiting: Waiting[] = [];
  private readonly inFlight = new Set<Promise<Float32Array>>();
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
    if (signal?.aborted) return Promise.reject(abortError());
    return new Promise<Float32Array>((resolve, reject) => {
      const entry: Waiting = { task, resolve, reject };
      if (signal) {
        const onAbort = () => {
          const at = this.waiting.indexOf(entry);
          if (at >= 0) {
            this.waiting.splice(at, 1);
            reject(abortError());
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        entry.detach = () => signal.removeEventListener('abort', onAbort);
      }
      this.waiting.push(entry);
      this.dispatch();
    });
  }

  /** Number of tasks waiting for a free thread. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Stops the worker threads: waiting tasks are rejected, running ones (at most one per thread) finish
   * first, because piscina mishandles a result that arrives while it tears a thread down. Safe to call
   * more than once.
   */
  destroy(): Promise<void> {
    if (!this.destroyed) {
      for (const entry of this.waiting.splice(0)) {
        entry.detach?.();
        entry.reject(new Error('augment pool destroyed'));
      }
      this.destroyed = Promise.allSettled(this.inFlight).then(() => this.piscina.destroy());
    }
    return this.destroyed;
  }

  private dispatch(): void {
    while (!this.destroyed && this.inFlight.size < this.workers && this.waiting.length > 0) {
      const entry = this.waiting.shift()!;
      entry.detach?.();
      const running = this.piscina.run(entry.task);
      this.inFlight.add(running);
      running.then(
        (x) => {
          this.inFlight.delete(running);
          entry.resolve(x);
          this.dispatch();
        },
        (err) => {
          this.inFlight.delete(running);
          entry.reject(err);
          this.dispatch();
        },
      );
    }
  }
}

interface Waiting {
  readonly task: AugmentTask;
  readonly resolve: (x: Float32Array) => void;
  readonly reject: (err: unknown) => void;
  detach?: () => void;
}

/** The rejection of a task cancelled before it started. */
export function abortError(): Error {
  const err = new Error('augment task cancelled');
  err.name = 'AbortError';
  return err;
}
