import * as tf from '@tensorflow/tfjs';
import type { BatchNormRef, ConvBnOptions, Ops, RunningStats } from './ops';

/**
 * The reference implementation of Ops in plain tfjs ops. It runs on any backend (tensorflow, cpu, wasm)
 * and is the numerical reference the fast paths are tested against.
 */
export const stockOps: Ops = {
  name: 'stock',

  convBn(x, filter, bn, opts) {
    const conv = tf.conv2d(x, filter, opts.stride, opts.padding);
    const y = batchNorm(conv, bn, opts);
    return opts.relu ? (tf.relu(y) as tf.Tensor4D) : y;
  },

  addRelu(a, b) {
    return tf.relu(tf.add(a, b)) as tf.Tensor4D;
  },

  maxPool2(x) {
    return tf.maxPool(x, 2, 2, 'valid');
  },

  globalAvgPool(x) {
    return tf.mean(x, [1, 2]) as tf.Tensor2D;
  },

  dense(x, w, b, relu) {
    const y = tf.add(tf.matMul(x, w), b) as tf.Tensor2D;
    return relu ? (tf.relu(y) as tf.Tensor2D) : y;
  },

  crossEntropy(logits, labels) {
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1]);
    return tf.losses.softmaxCrossEntropy(oneHot, logits) as tf.Scalar;
  },
};

/** BatchNorm from elementary ops (tf.batchNorm's gradient is slow on wasm and cpu). */
export function batchNorm(x: tf.Tensor4D, bn: BatchNormRef, opts: ConvBnOptions): tf.Tensor4D {
  if (!opts.training) {
    const scale = tf.mul(bn.gamma, tf.rsqrt(tf.add(bn.stats.variance, bn.stats.epsilon)));
    const shift = tf.sub(bn.beta, tf.mul(bn.stats.mean, scale));
    return tf.add(tf.mul(x, scale), shift) as tf.Tensor4D;
  }
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  updateRunningStats(bn.stats, mean, variance, x.size / x.shape[3]);
  const normalised = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, bn.stats.epsilon)));
  return tf.add(tf.mul(normalised, bn.gamma), bn.beta) as tf.Tensor4D;
}

/** Applies the running-statistics update outside any gradient computation. */
export function updateRunningStats(stats: RunningStats, batchMean: tf.Tensor, batchVariance: tf.Tensor, count: number): void {
  tf.tidy(() => {
    const m = stats.momentum;
    const unbiased = tf.mul(batchVariance, count / Math.max(1, count - 1));
    stats.mean.assign(tf.add(tf.mul(stats.mean, 1 - m), tf.mul(batchMean, m)));
    stats.variance.assign(tf.add(tf.mul(stats.variance, 1 - m), tf.mul(unbiased, m)));
  });
}
