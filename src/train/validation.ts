import type * as tf from '@tensorflow/tfjs';
import type { Ops } from '../compute/ops';
import type { Model } from '../models/model';

/**
 * The hook the training stage calls at the end of every epoch to fill `epochEnd`'s validation fields.
 * The metrics themselves (loss, accuracy, ECE) belong to the calibration code; the trainer only hands
 * over what to evaluate.
 */
export interface EvaluationInput {
  readonly epoch: number;
  /** Index of the last step of the epoch. */
  readonly step: number;
  readonly model: Model;
  readonly ops: Ops;
  /**
   * Evaluation parameters by spec name: M ⊙ W for masked weights (no random mask Z), every other
   * parameter as is. They are the trainer's live variables (inactive weights are exactly zero): read
   * them, never dispose or assign them, and do not keep them past the returned promise. Evaluate with
   * `model.apply(params, x, false, ops)` (BatchNorm running statistics).
   */
  readonly params: Readonly<Record<string, tf.Tensor>>;
}

export interface SplitMetrics {
  readonly loss: number;
  readonly accuracy: number;
  /** 15-bin equal-width ECE, if the hook computes it. */
  readonly ece?: number;
}

export interface ValidationResult extends SplitMetrics {
  /** The same on the test split, when the run follows it epoch by epoch (train.testEveryEpoch). */
  readonly test?: SplitMetrics;
}

export type Validate = (input: EvaluationInput) => Promise<ValidationResult>;
