import type { ImageDataset } from '../data/types';
import type { ImageBlock } from './augment';
import { abortError, type AugmentRunner } from './pool';
import { runAugmentTask, type AugmentTask } from './task';

/**
 * Augmentation on the calling thread (`workers: 0`): the same tasks and results as AugmentPool, for
 * machines or tests where threads do not pay. Each task runs in its own macrotask (setImmediate), so
 * the event loop keeps turning between batches and cancelling drops tasks that have not started.
 */
export class MainThreadAugmenter implements AugmentRunner {
  readonly block: ImageBlock;

  constructor(dataset: ImageDataset) {
    this.block = {
      images: dataset.images,
      count: dataset.count,
      height: dataset.height,
      width: dataset.width,
      channels: dataset.channels,
    };
  }

  run(task: AugmentTask, signal?: AbortSignal): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      setImmediate(() => {
        if (signal?.aborted) return reject(abortError());
        try {
          resolve(runAugmentTask(this.block, task));
        } catch (err) {
          reject(err);
        }
      });
    });
  }
}
