import { Rng } from '../util/rng';

/** Where a batch sits in training: epoch from 0 and batch index within it from 0 (also a resume point). */
export interface BatchPosition {
  readonly epoch: number;
  readonly index: number;
}

/** One planned batch: its position and the data set images it holds, in order. */
export interface PlannedBatch extends BatchPosition {
  readonly indices: Int32Array;
}

/** The image order of one epoch: a permutation drawn from Rng.derive(seed, 'shuffle', epoch) only. */
export function epochOrder(seed: number, epoch: number, count: number): Int32Array {
  return Rng.derive(seed, 'shuffle', epoch).permutation(count);
}

export function batchesPerEpoch(count: number, batchSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(count / batchSize) : Math.ceil(count / batchSize);
}

export interface EpochPlanOptions {
  readonly count: number;
  readonly batchSize: number;
  readonly seed: number;
  /** Epochs in all (the stream ends after epoch `epochs` − 1); Infinity for no end. */
  readonly epochs: number;
  readonly start: BatchPosition;
  readonly dropLast: boolean;
  /** false: images in data set order (evaluation). */
  readonly shuffle: boolean;
}

/** The batches from `start` on, epoch after epoch, each epoch in its own shuffled order. */
export function* epochPlan(options: EpochPlanOptions): Generator<PlannedBatch> {
  const { count, batchSize, seed, epochs, start, dropLast, shuffle } = options;
  const perEpoch = batchesPerEpoch(count, batchSize, dropLast);
  for (let epoch = start.epoch; epoch < epochs; epoch++) {
    const order = shuffle ? epochOrder(seed, epoch, count) : identity(count);
    for (let index = epoch === start.epoch ? start.index : 0; index < perEpoch; index++) {
      const from = index * batchSize;
      yield { epoch, index, indices: order.slice(from, Math.min(from + batchSize, count)) };
    }
  }
}

/** Checks a plan's numbers, naming the bad one. */
export function checkPlan(options: EpochPlanOptions): void {
  const { count, batchSize, seed, epochs, start, dropLast } = options;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new Error(`batchSize must be an integer ≥ 1, got ${batchSize}`);
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  if (!(epochs === Infinity || (Number.isInteger(epochs) && epochs >= 0))) {
    throw new Error(`epochs must be a non-negative integer or Infinity, got ${epochs}`);
  }
  if (count < 1) throw new Error('the data set is empty');
  const perEpoch = batchesPerEpoch(count, batchSize, dropLast);
  if (perEpoch === 0) throw new Error(`batchSize ${batchSize} with dropLast leaves no batch of ${count} images`);
  if (!(Number.isInteger(start.epoch) && start.epoch >= 0)) throw new Error(`start epoch must be an integer ≥ 0, got ${start.epoch}`);
  if (!(Number.isInteger(start.index) && start.index >= 0 && start.index < perEpoch)) {
    throw new Error(`start index must be an integer in [0, ${perEpoch}), got ${start.index}`);
  }
}

function identity(count: number): Int32Array {
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  return order;
}
