// Piscina worker: one augmented batch per task. The data set's pixels arrive once, at pool creation, as
// shared memory in workerData (see src/augment/pool.ts); each task carries only indices and parameters.
import { move, workerData } from 'piscina';
import type { ImageBlock } from '../src/augment/augment';
import { runAugmentTask, type AugmentTask } from '../src/augment/task';

const block: ImageBlock = workerData as ImageBlock;

export default function augment(task: AugmentTask): Float32Array {
  // Transferred, not copied: `move` works only on the top-level return value.
  return move(runAugmentTask(block, task)) as Float32Array;
}
