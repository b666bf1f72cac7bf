import * as tf from '@tensorflow/tfjs';
import type { Ops } from '../compute/ops';
import type { Model } from '../models/model';

/**
 * The arithmetic of one training step. Effective weights are W ⊙ m with m = M (sparse), M ⊙ Z / (1 − p)
 * (CigL) or no multiplier (dense, biases, BatchNorm). The loss is differentiated with respect to the
 * effective weights: that gradient is the dense gradient RigL grows by, and ∂L/∂W = ∂L/∂W_eff ⊙ m (formed
 * inside the optimiser's update: SgdMomentum.step's `multipliers`).
 */
// A type alias (not an interface) so that it is a tf.TensorContainer and can be returned from tf.tidy.
export type ForwardBackward = {
  /** Mean cross-entropy of the batch. */
  readonly loss: tf.Scalar;
  /** Number of correctly classified images (float scalar). */
  readonly correct: tf.Scalar;
  /** ∂L/∂W_eff for every parameter, by name. */
  readonly effectiveGrads: Record<string, tf.Tensor>;
};

/** W ⊙ m for parameters with a multiplier, the parameter itself otherwise. */
export function effectiveParams(params: ReadonlyMap<string, tf.Tensor>, multipliers: ReadonlyMap<string, tf.Tensor>): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, w] of params) {
    const m = multipliers.get(name);
    out[name] = m ? tf.mul(w, m) : w;
  }
  return out;
}

/**
 * Training-mode forward and backward pass (BatchNorm running statistics are updated as a side effect).
 * All returned tensors are new; the caller disposes them (run it inside tf.tidy and return the result).
 * With `active` (the step's multipliers by parameter name), compute paths may skip inactive weights and
 * ∂L/∂W_eff is then exact only where the multiplier is nonzero (0 elsewhere): enough for the optimiser
 * step, not for growing weights, so mask-update steps must pass none.
 */
export function forwardBackward(model: Model, ops: Ops, effective: Readonly<Record<string, tf.Tensor>>, x: tf.Tensor, labels: tf.Tensor1D,
  active?: Readonly<Record<string, tf.Tensor>>): ForwardBackward {
  const names = model.specs.map((s) => s.name);
  let correct: tf.Scalar | undefined;
  const lossOf = (...xs: tf.Tensor[]): tf.Scalar => {
    const p: Record<string, tf.Tensor> = {};
    names.forEach((n, i) => (p[n] = xs[i]));
    const logits = model.apply(p, x, true, ops, active);
    // Kept past the gradient scope's tidy; returned to (and disposed by) the caller.
    correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'))) as tf.Scalar;
    return ops.crossEntropy(logits, labels);
  };
  const { value, grads } = tf.valueAndGrads(lossOf)(names.map((n) => {
    const t = effective[n];
    if (!t) throw new Error(`forwardBackward: no effective tensor for parameter '${n}'`);
    return t;
  }));
  const effectiveGrads: Record<string, tf.Tensor> = {};
  names.forEach((n, i) => (effectiveGrads[n] = grads[i]));
  return { loss: value as tf.Scalar, correct: correct!, effectiveGrads };
}

