import * as tf from '@tensorflow/tfjs';
import { concatMap, count, defer, from, lastValueFrom, map, tap, type Observable, type ObservableInput, type OperatorFunction } from 'rxjs';
import type { BatchNormRef, ConvBnOptions, Ops, RunningStats } from '../compute/ops';
import type { Model } from '../models/model';
import { inputTensor, paramTensors, type ParamValues } from '../models/param-tensors';
import type { Batch } from '../stream/batch';
import { batchStream, type StreamCommonOptions } from '../stream/batch-stream';
import { Rng } from '../util/rng';
import type { NamedArray, NamedArrays } from '../util/named-arrays';

/**
 * BatchNorm running statistics are wrong after weight averaging (they belong to no single set of
 * weights), so they are reset and recomputed with one pass over the training data in training mode,
 * with no gradient, before any evaluation (as torch.optim.swa_utils.update_bn does). The batches must
 * look like training's: shuffled (class-sorted batches skew every layer after the first) and augmented
 * as training was (a model trained on padded crops sees other statistics on clean images).
 *
 * What is computed: the exact pooled statistics over every value a BN layer normalises in the pass
 * (all examples × positions of the pass), mean and unbiased variance, not PyTorch's cumulative average
 * of per-batch statistics (momentum = None), which weights batches equally and misses the spread
 * between batch means. How, through the Ops interface alone: every BN layer's momentum is set to 1, so
 * after each training-mode convBn call its running statistics hold that batch's mean and unbiased
 * variance; the call's output shape [n, h, w, c] gives the count m = n·h·w, from which the biased batch
 * variance is recovered (Ops convention: unbiased = biased · m / (m − 1)). Per-batch moments are merged
 * in float64 with Chan et al.'s parallel formula; at the end each layer's running mean and variance are
 * set to the pooled values and the momenta restored.
 *
 * Layers deeper than the first see inputs normalised with their batch statistics (training mode), as in
 * the reference. The model's running statistics are changed in place.
 */

export interface BatchNormRecompute {
  readonly batches: number;
  readonly examples: number;
  /** The new running mean and variance of every BatchNorm layer, by layer name. */
  readonly mean: NamedArrays;
  readonly variance: NamedArrays;
}

/** Float64 running moments of one layer: count, mean and the sum of squared deviations (Chan et al.). */
class PooledMoments {
  count = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;

  constructor(channels: number) {
    this.mean = new Float64Array(channels);
    this.m2 = new Float64Array(channels);
  }

  /** Merges a batch of `m` values per channel with the given mean and biased variance. */
  merge(m: number, batchMean: ArrayLike<number>, batchVariance: ArrayLike<number>): void {
    const total = this.count + m;
    for (let c = 0; c < this.mean.length; c++) {
      const delta = batchMean[c] - this.mean[c];
      this.mean[c] += (delta * m) / total;
      this.m2[c] += batchVariance[c] * m + (delta * delta * this.count * m) / total;
    }
    this.count = total;
  }
}

/**
 * Resets and recomputes the running statistics of every BatchNorm layer of `model` with one pass of
 * `batches` (the training split, shuffled and augmented as in training) through `model.apply(params, x, training = true)`.
 * Works for any Model whose BatchNorm layers all run through `ops.convBn`; leaves tf.memory().numTensors
 * as it found it.
 */
export async function recomputeBatchNorm(
  model: Model,
  params: ParamValues,
  batches: ObservableInput<Batch>,
  ops: Ops,
): Promise<BatchNormRecompute> {
  const layerOf = new Map<RunningStats, string>();
  for (const [name, stats] of model.bnStats) layerOf.set(stats, name);
  const pooled = new Map<string, PooledMoments>();
  const momenta = new Map<RunningStats, number>();
  for (const stats of model.bnStats.values()) momenta.set(stats, stats.momentum);

  const record = (bn: BatchNormRef, out: tf.Tensor4D): void => {
    const name = layerOf.get(bn.stats);
    if (name === undefined) throw new Error(`recomputeBatchNorm: model ${model.name} ran a BatchNorm layer that is not in its bnStats`);
    const [n, h, w, channels] = out.shape;
    const m = n * h * w;
    const unbiased = bn.stats.variance.dataSync();
    const biased = Float64Array.from(unbiased, (v) => (v * Math.max(1, m - 1)) / m);
    let moments = pooled.get(name);
    if (!moments) pooled.set(name, (moments = new PooledMoments(channels)));
    moments.merge(m, bn.stats.mean.dataSync(), biased);
  };
  const recordingOps: Ops = {
    name: `${ops.name}+batchNormRecompute`,
    convBn(x: tf.Tensor4D, filter: tf.Tensor4D, bn: BatchNormRef, opts: ConvBnOptions) {
      const out = ops.convBn(x, filter, bn, opts);
      if (opts.training) record(bn, out);
      return out;
    },
    addRelu: (a, b) => ops.addRelu(a, b),
    maxPool2: (x) => ops.maxPool2(x),
    globalAvgPool: (x) => ops.globalAvgPool(x),
    dense: (x, w, b, relu) => ops.dense(x, w, b, relu),
    crossEntropy: (logits, labels) => ops.crossEntropy(logits, labels),
  };

  const tensors = paramTensors(model, params);
  let examples = 0;
  try {
    for (const stats of model.bnStats.values()) {
      stats.momentum = 1;
      tf.tidy(() => {
        stats.mean.assign(tf.zerosLike(stats.mean));
        stats.variance.assign(tf.onesLike(stats.variance));
      });
    }
    const batchCount = await lastValueFrom(
      from(batches).pipe(
        tap((batch) => {
          tf.tidy(() => {
            model.apply(tensors.tensors, inputTensor(model, batch), true, recordingOps);
          });
          examples += batch.size;
        }),
        count(),
      ),
    );
    if (batchCount === 0) throw new Error(`recomputeBatchNorm: no training batches for model ${model.name}`);
    const mean: Record<string, NamedArray> = {};
    const variance: Record<string, NamedArray> = {};
    for (const [name, stats] of model.bnStats) {
      const moments = pooled.get(name);
      if (!moments) throw new Error(`recomputeBatchNorm: BatchNorm layer '${name}' of model ${model.name} saw no training-mode convBn call`);
      const meanValues = Float32Array.from(moments.mean);
      const varianceValues = Float32Array.from(moments.m2, (v) => v / Math.max(1, moments.count - 1));
      tf.tidy(() => {
        stats.mean.assign(tf.tensor(meanValues, stats.mean.shape));
        stats.variance.assign(tf.tensor(varianceValues, stats.variance.shape));
      });
      mean[name] = { shape: [...stats.mean.shape], values: meanValues };
      variance[name] = { shape: [...stats.variance.shape], values: varianceValues };
    }
    return { batches: batchCount, examples, mean, variance };
  } finally {
    for (const [stats, momentum] of momenta) stats.momentum = momentum;
    tensors.dispose();
  }
}

export interface BatchNormPassOptions extends Omit<StreamCommonOptions, 'consumed'> {
  /** The run's seed; the pass draws from a random stream of its own derived from it. */
  readonly seed: number;
  /** Whether training used the standard augmentation (random crop with padding, flip). */
  readonly augment: boolean;
}

/**
 * The batches of the recompute, as the authors' code (SWA's bn_update) feeds them: one pass over the
 * training split, shuffled, with the training augmentation when training used it, from a random stream
 * of its own derived from the run's seed (the same seed gives the same pass; every model recomputed in a
 * run gets the same batches).
 */
export function batchNormPass(options: BatchNormPassOptions): Observable<Batch> {
  const { seed, augment, ...stream } = options;
  return batchStream({ ...stream, seed: Rng.derive(seed, 'batchNormRecompute').nextU32(), epochs: 1, augment: augment ? undefined : false });
}
