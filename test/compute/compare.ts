import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon } from '../../src/compute/native-addon';
import type { BatchNormRef, ConvBnOptions, Ops, RunningStats } from '../../src/compute/ops';

/** max |a − b| / max |b|: the error relative to the reference's scale (1e-4 is the float32 bar). */
export function relativeError(actual: tf.Tensor, reference: tf.Tensor): number {
  if (!tf.util.arraysEqual(actual.shape, reference.shape)) throw new Error(`shapes differ: [${actual.shape}] vs [${reference.shape}]`);
  const a = actual.dataSync();
  const b = reference.dataSync();
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** The reason native tests are skipped, or false when the addon is built and loads. */
export const nativeUnavailable: string | false = (() => {
  const loaded = loadNativeAddon();
  return 'error' in loaded ? `native addon unavailable: ${loaded.error}` : false;
})();

export const TOLERANCE = 1e-4;

/** BatchNorm running statistics with non-trivial values (evaluation mode must use them). */
export const runningStats = (channels: number): RunningStats => ({
  mean: tf.variable(tf.randomNormal([channels], 0, 0.1, 'float32', 11), false),
  variance: tf.variable(tf.randomUniform([channels], 0.5, 1.5, 'float32', 12), false),
  momentum: 0.1,
  epsilon: 1e-5,
});

/**
 * Output and gradients of sum(op(...) · upstream) with respect to every input, the final running
 * statistics, and the number of tensors the call leaked. With `upstreamMask` (the output's shape) the
 * upstream gradient is 0 where the mask is (see reluSafeMask).
 */
export function convBnResult(ops: Ops, x: tf.Tensor4D, filter: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, opts: ConvBnOptions,
  upstreamMask?: tf.Tensor) {
  const stats = runningStats(filter.shape[3]);
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    const f = (xx: tf.Tensor, ff: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor4D =>
      ops.convBn(xx as tf.Tensor4D, ff as tf.Tensor4D, { gamma: g as tf.Tensor1D, beta: b as tf.Tensor1D, stats } as BatchNormRef, opts);
    const y = f(x, filter, gamma, beta);
    const noise = tf.randomNormal(y.shape, 0, 1, 'float32', 13);
    const upstream = upstreamMask ? tf.mul(noise, upstreamMask) : noise;
    const grads = tf.grads((xx, ff, g, b) => tf.sum(tf.mul(f(xx, ff, g, b), upstream)))([x, filter, gamma, beta]);
    return { y, dx: grads[0], dfilter: grads[1], dgamma: grads[2], dbeta: grads[3] };
  });
  const leaked = tf.memory().numTensors - before - 5;
  const result = { ...out, mean: stats.mean.clone(), variance: stats.variance.clone(), leaked };
  stats.mean.dispose();
  stats.variance.dispose();
  return result;
}

/**
 * 1 where the pre-activation act(BN(conv)) acts on is at least `epsilon` away from the ReLU's threshold,
 * else 0 (computed on `ops` with the ReLU off, in training mode: the same batch statistics). Two
 * correct implementations round a pre-activation within a few ulps of 0 differently, one side of the ReLU
 * or the other, and that one element's gradient then differs by its whole size: comparing gradients
 * through a ReLU is only meaningful away from it.
 */
export function reluSafeMask(ops: Ops, x: tf.Tensor4D, filter: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, opts: ConvBnOptions,
  epsilon = 1e-5): tf.Tensor {
  const stats = runningStats(filter.shape[3]);
  const mask = tf.tidy(() => tf.cast(tf.greaterEqual(tf.abs(ops.convBn(x, filter, { gamma, beta, stats } as BatchNormRef, { ...opts, relu: false })), epsilon), 'float32'));
  stats.mean.dispose();
  stats.variance.dispose();
  return mask;
}
