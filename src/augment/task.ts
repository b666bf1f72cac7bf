import type { ChannelStats } from '../data/types';
import { Rng } from '../util/rng';
import { augmentBatch, normalizeBatch, type AugmentParams, type ImageBlock } from './augment';

/** One batch of work for an augmentation worker: plain data in, float32 NHWC pixels out. */
export interface AugmentTask {
  readonly seed: number;
  readonly epoch: number;
  /** Batch index within the epoch; with `seed` and `epoch` it fixes the random draws. */
  readonly index: number;
  /** Images of the pool's data set, in batch order. */
  readonly indices: Int32Array;
  readonly stats: ChannelStats;
  /** Crop/flip parameters, or null for evaluation (normalise only). */
  readonly augment: AugmentParams | null;
}

/** The batch a task describes; randomness comes from Rng.derive(seed, 'augment', epoch, index) only. */
export function runAugmentTask(block: ImageBlock, task: AugmentTask): Float32Array {
  if (task.augment === null) return normalizeBatch(block, task.indices, task.stats);
  const rng = Rng.derive(task.seed, 'augment', task.epoch, task.index);
  return augmentBatch(block, task.indices, task.stats, rng, task.augment);
}
