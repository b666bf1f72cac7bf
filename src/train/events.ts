import type { NamedArrays } from '../util/named-arrays';

/**
 * The vocabulary of the training stage: one discriminated union that every subscriber (sinks, averaging,
 * dashboards, progress bars) reads. Values are plain numbers and typed arrays, never tensors.
 */
export type TrainEvent = StepEvent | MaskUpdateEvent | SnapshotEvent | EpochEndEvent | BatchEndEvent;

export interface StepEvent {
  readonly type: 'step';
  /** Global optimisation step, from 0. */
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  /** Training accuracy of this batch, in [0, 1]. */
  readonly accuracy: number;
  readonly lr: number;
  readonly imagesPerSecond: number;
  readonly wallTimeMs: number;
}

export interface LayerMaskUpdate {
  readonly layer: string;
  /** Weights switched off (the mask's net change; equal to `grown`). */
  readonly pruned: number;
  /** Weights switched on that were inactive before the update (they start at 0 with zero momentum). */
  readonly grown: number;
  /** Weights the drop chose and the growth chose again: they stay active with their value and momentum. */
  readonly reselected: number;
  /** Active weights after the update divided by the layer's size. */
  readonly density: number;
  readonly dropFraction: number;
  /** How many of the weights grown at the previous update were pruned now. */
  readonly regrownPruned: number;
}

export interface MaskUpdateEvent {
  readonly type: 'maskUpdate';
  readonly step: number;
  readonly epoch: number;
  readonly layers: readonly LayerMaskUpdate[];
  readonly wallTimeMs: number;
}

export interface SnapshotEvent {
  readonly type: 'snapshot';
  readonly step: number;
  readonly epoch: number;
  /**
   * Every trainable parameter as evaluated by the averaging stage: masked weights are the effective
   * M ⊙ Z_e ⊙ W / (1 − p); biases and BatchNorm affine parameters as they are.
   */
  readonly weights: NamedArrays;
  /** The deterministic masks M of the masked layers at the time of the snapshot (1 = active). */
  readonly masks: NamedArrays;
  readonly wallTimeMs: number;
}

export interface EpochEndEvent {
  readonly type: 'epochEnd';
  readonly step: number;
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly validationLoss?: number;
  readonly validationAccuracy?: number;
  /** 15-bin equal-width ECE on the validation split. */
  readonly validationEce?: number;
  readonly wallTimeMs: number;
}

/**
 * The last event of every batch: everything the batch caused has been emitted, so the trainer's state
 * (and every stage downstream that folded this batch's events) is consistent. Checkpoints, consumption
 * acknowledgements and graceful stops happen here and only here.
 */
export interface BatchEndEvent {
  readonly type: 'batchEnd';
  /** The step of this batch (as in its `step` event). */
  readonly step: number;
  readonly epoch: number;
  /** Position of the batch within its epoch. */
  readonly index: number;
  /** True when this batch ended its epoch. */
  readonly epochEnded: boolean;
  readonly wallTimeMs: number;
}
