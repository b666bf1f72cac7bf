import type * as tf from '@tensorflow/tfjs';
import type { Ops, RunningStats } from '../compute/ops';
import type { Architecture } from './architecture';

/** What a parameter is; decides masking, weight decay and how it is exported. */
export type ParamKind = 'conv' | 'dense' | 'bias' | 'bnGamma' | 'bnBeta';

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly kind: ParamKind;
  /**
   * Whether sparse methods mask this parameter by default. Conv and dense weights are, except the
   * classifier (last dense layer), which is masked only on request (sparse.maskClassifier); biases and
   * BatchNorm never are.
   */
  readonly maskable: boolean;
}

/**
 * A model as a set of named trainable variables plus a forward function that takes the parameter
 * tensors explicitly, so the training stage can substitute effective (masked) weights and differentiate
 * with respect to them. Layout: NHWC input, HWIO conv filters, [in, out] dense weights.
 */
export interface Model {
  readonly name: string;
  /** [height, width, channels] for image models, [features] for mlp. */
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  /** The description the model was built from (drives export to a tfjs Layers model). */
  readonly architecture: Architecture;
  readonly specs: readonly ParamSpec[];
  /** Trainable variables by ParamSpec name. */
  readonly params: ReadonlyMap<string, tf.Variable>;
  /** BatchNorm running statistics by layer name (not trainable). */
  readonly bnStats: ReadonlyMap<string, RunningStats>;
  /**
   * Logits [n, numClasses]. `params` holds a tensor for every spec name. `active` optionally holds the
   * active pattern of masked weights by parameter name (see ConvBnOptions.active): compute paths may
   * then skip inactive weights, and those weights' gradients are 0.
   */
  apply(params: Readonly<Record<string, tf.Tensor>>, x: tf.Tensor, training: boolean, ops: Ops, active?: Readonly<Record<string, tf.Tensor>>): tf.Tensor2D;
  dispose(): void;
}
