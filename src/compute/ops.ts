import type * as tf from '@tensorflow/tfjs';

/**
 * The layer-level operations the models are written in. Every compute path (stock tfjs on any backend,
 * the native CPU path) implements this one interface, so models, sparse methods and the optimiser never
 * know which one runs. Layout is NHWC for activations and HWIO for convolution filters; dense weights
 * are [in, out].
 *
 * All ops must be differentiable with tf.grads with respect to their tensor inputs (x, filters, gamma,
 * beta, dense weights and biases). Running BatchNorm statistics are not differentiated: in training mode
 * an op updates them in place as a side effect.
 */
export interface Ops {
  /** Short name for logs: 'stock', 'native', ... */
  readonly name: string;

  /**
   * conv2d (no bias) → BatchNorm → optional ReLU. Training mode normalises with batch statistics and
   * updates `bn.stats`; evaluation mode uses the running statistics.
   */
  convBn(x: tf.Tensor4D, filter: tf.Tensor4D, bn: BatchNormRef, opts: ConvBnOptions): tf.Tensor4D;

  /**
   * Optional: convBn twice, the second reading only the first's output (a residual block's body). A
   * path may fuse the pair (the native path keeps the activation between them in its own layout); the
   * result must equal two convBn calls. Paths without it leave it out and the model calls convBn twice.
   * With `tail` 'residual' the pair is an identity residual block's body and the result is
   * addRelu(pair(x), x) (second.opts.relu false, output of x's shape); with 'maxPool2' the result is
   * maxPool2(pair(x)).
   */
  convBnPair?(x: tf.Tensor4D, first: ConvBnCall, second: ConvBnCall, tail?: PairTail): tf.Tensor4D;

  /**
   * Optional: residual blocks in sequence, h ← relu(convBnPair(h, first, second) + shortcut(h)), each body a
   * convBn pair (second ReLU off); the shortcut is the identity (output of h's shape) or, for a projection
   * block (a stage entry), convBn(h, shortcut) (ReLU off; typically 1×1 with the first layer's stride). A
   * path may keep the activations between blocks in its own layout; the result must equal the blocks one
   * by one: convBnPair(h, first, second, true) for an identity block, addRelu(convBnPair(h, first, second),
   * convBn(h, shortcut)) for a projection block. With `head`, convBn(x, head) comes first (a ResNet's stem).
   * Paths without it leave it out and the model calls those.
   */
  residualBlocks?(x: tf.Tensor4D, blocks: readonly ResidualBlockCall[], head?: ConvBnCall): tf.Tensor4D;

  /** relu(a + b), the residual join. */
  addRelu(a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D;

  /** 2×2 max pooling, stride 2. */
  maxPool2(x: tf.Tensor4D): tf.Tensor4D;

  /** Mean over height and width: [n, h, w, c] → [n, c]. */
  globalAvgPool(x: tf.Tensor4D): tf.Tensor2D;

  /** x·w + b, optional ReLU. x [n, in], w [in, out], b [out]. */
  dense(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, relu: boolean): tf.Tensor2D;

  /** Mean softmax cross-entropy of logits [n, classes] against integer labels [n]. */
  crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar;
}

/** A residual block's body (two convBn calls, the second without ReLU) and a projection block's convBn shortcut (without ReLU). */
export type ResidualBlockCall = readonly [first: ConvBnCall, second: ConvBnCall, shortcut?: ConvBnCall];

/** What follows a convBn pair inside the same op: an identity residual join, or a 2×2 max pool. */
export type PairTail = 'residual' | 'maxPool2';

export interface ConvBnOptions {
  readonly stride: number;
  readonly padding: 'same' | 'valid';
  readonly relu: boolean;
  readonly training: boolean;
  /**
   * The filter's active pattern (nonzero where the weight takes part, e.g. the step's mask multiplier
   * M or M ⊙ Z / (1 − p)). With it, a compute path may skip the inactive weights: the output and the
   * input gradient are those of the filter as given (inactive weights must be 0 in it) and the filter
   * gradient is exact at active positions and 0 elsewhere. Without it the filter gradient is dense.
   * Paths without sparse kernels ignore it.
   */
  readonly active?: tf.Tensor4D;
  /** The layer's name, for reports of which path ran. */
  readonly layer?: string;
}

/** One convBn call's arguments after x. */
export interface ConvBnCall {
  readonly filter: tf.Tensor4D;
  readonly bn: BatchNormRef;
  readonly opts: ConvBnOptions;
}

/** BatchNorm running statistics and their update rule. */
export interface RunningStats {
  readonly mean: tf.Variable;
  readonly variance: tf.Variable;
  /**
   * PyTorch convention: running = (1 − momentum) · running + momentum · batch, with the unbiased batch
   * variance for the running variance. Default 0.1.
   */
  momentum: number;
  readonly epsilon: number;
}

export interface BatchNormRef {
  readonly gamma: tf.Tensor1D;
  readonly beta: tf.Tensor1D;
  readonly stats: RunningStats;
}
