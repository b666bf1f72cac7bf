import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, of } from 'rxjs';
import t from 'tap';
import { recomputeBatchNorm, withRecomputedBatchNorm } from '../../src/average/batch-norm-recompute';
import { stockOps } from '../../src/compute/stock-ops';
import { createModel } from '../../src/models/build';
import type { Model } from '../../src/models/model';
import { inputTensor, paramTensors } from '../../src/models/param-tensors';
import type { Batch } from '../../src/stream/batch';
import { paramsOf, syntheticBatches, tinyModel } from './tiny-model';

const SIZES = [8, 8, 8, 8, 5];

/** All batches as one input tensor. */
function allInputs(model: Model, batches: Batch[]): tf.Tensor4D {
  return tf.concat(batches.map((b) => inputTensor(model, b) as tf.Tensor4D));
}

/** Per-channel mean and unbiased variance of a [n, h, w, c] tensor over all of n, h, w. */
function trueStats(values: tf.Tensor4D): { mean: Float32Array; variance: Float32Array } {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(values, [0, 1, 2]);
    const m = values.size / values.shape[3];
    return { mean: mean.dataSync() as Float32Array, variance: tf.mul(variance, m / (m - 1)).dataSync() as Float32Array };
  });
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1e-6, Math.abs(expected[i])));
  return worst;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function evalLogits(model: Model, batches: Batch[]): Float32Array {
  const p = paramTensors(model, paramsOf(model));
  const out = tf.tidy(() => model.apply(p.tensors, allInputs(model, batches), false, stockOps).dataSync() as Float32Array);
  p.dispose();
  return Float32Array.from(out);
}

t.before(async () => {
  await tf.setBackend('cpu');
});

t.test('recompute gives the exact pooled statistics; evaluation matches a model given the true statistics', async (t) => {
  const batches = syntheticBatches(1, SIZES);
  const model = tinyModel(2);
  const reference = tinyModel(2);
  const params = paramsOf(model);
  const before = tf.memory().numTensors;
  const result = await recomputeBatchNorm(model, params, from(batches), stockOps);
  t.equal(tf.memory().numTensors, before, 'no tensor leaked');
  t.same([result.batches, result.examples], [5, 37]);
  t.equal(model.bnStats.get('c1')!.momentum, 0.1, 'momentum restored');

  // The truth: the conv output over the whole data set, in one piece.
  const truth = tf.tidy(() => trueStats(tf.conv2d(allInputs(model, batches), model.params.get('c1.w') as tf.Variable as tf.Tensor4D, 1, 'same')));
  const c1 = model.bnStats.get('c1')!;
  t.ok(maxRelativeError(c1.mean.dataSync(), truth.mean) < 1e-5, `running mean = true mean (${maxRelativeError(c1.mean.dataSync(), truth.mean)})`);
  t.ok(maxRelativeError(c1.variance.dataSync(), truth.variance) < 1e-5, `running variance = true variance (${maxRelativeError(c1.variance.dataSync(), truth.variance)})`);
  t.same(result.mean.c1.values, c1.mean.dataSync(), 'the result reports what the model now holds');

  const refStats = reference.bnStats.get('c1')!;
  refStats.mean.assign(tf.tensor(truth.mean));
  refStats.variance.assign(tf.tensor(truth.variance));
  const diff = maxAbsDiff(evalLogits(model, batches), evalLogits(reference, batches));
  t.ok(diff < 1e-5, `evaluation logits match the directly-set model: max |Δ| = ${diff}`);

  // PyTorch's cumulative average of per-batch statistics (momentum 1/(k+1)) misses the spread of the
  // batch means, which this data set makes large: the pooled statistics are the better choice.
  const cumulative = tinyModel(2);
  const stats = cumulative.bnStats.get('c1')!;
  const p = paramTensors(cumulative, params);
  batches.forEach((b, k) => {
    stats.momentum = 1 / (k + 1);
    tf.tidy(() => cumulative.apply(p.tensors, inputTensor(cumulative, b), true, stockOps));
  });
  p.dispose();
  const cumulativeError = maxRelativeError(stats.variance.dataSync(), truth.variance);
  t.ok(cumulativeError > 0.01, `the cumulative average is off by ${cumulativeError} relative`);
  for (const m of [model, reference, cumulative]) m.dispose();
});

t.test('works for a deeper model: every layer recomputed with its own element count', async (t) => {
  const batches = syntheticBatches(3, [7, 9, 4]);
  const model = tinyModel(4, true);
  const params = paramsOf(model);
  const before = tf.memory().numTensors;
  const result = await recomputeBatchNorm(model, params, batches, stockOps);
  t.equal(tf.memory().numTensors, before);
  t.same(Object.keys(result.mean).sort(), ['c1', 'c2']);

  // Expected layer-2 statistics: layer 1 normalised with each batch's own statistics (training mode),
  // then conv2, pooled over all batches.
  const g1 = model.params.get('c1.gamma')!;
  const b1 = model.params.get('c1.beta')!;
  const expected = tf.tidy(() => {
    const layer2 = batches.map((b) => {
      const c1 = tf.conv2d(inputTensor(model, b) as tf.Tensor4D, model.params.get('c1.w') as unknown as tf.Tensor4D, 1, 'same');
      const { mean, variance } = tf.moments(c1, [0, 1, 2]);
      const h = tf.relu(tf.add(tf.mul(tf.mul(tf.sub(c1, mean), tf.rsqrt(tf.add(variance, 1e-5))), g1), b1)) as tf.Tensor4D;
      return tf.conv2d(h, model.params.get('c2.w') as unknown as tf.Tensor4D, 2, 'same');
    });
    return trueStats(tf.concat(layer2));
  });
  const bn2 = model.bnStats.get('c2')!;
  t.ok(maxRelativeError(bn2.mean.dataSync(), expected.mean) < 1e-4, 'layer 2 mean pooled over batches');
  t.ok(maxRelativeError(bn2.variance.dataSync(), expected.variance) < 1e-4, `layer 2 variance (stride 2: 9 positions per image) ${maxRelativeError(bn2.variance.dataSync(), expected.variance)}`);

  // The stage form recomputes for each averaged model that arrives and attaches the statistics.
  tf.tidy(() => bn2.mean.assign(tf.zeros([5])));
  const out = await lastValueFrom(of({ weights: params, tag: 'avg' }).pipe(withRecomputedBatchNorm(model, stockOps, batches)));
  t.equal(out.tag, 'avg', 'the averaged model passes through');
  t.same(out.batchNorm.mean.c2.values, result.mean.c2.values, 'same data, same statistics');
  t.same(bn2.mean.dataSync(), result.mean.c2.values);
  model.dispose();
});

t.test('errors: a BatchNorm layer never run in training mode, no batches, a batch of the wrong size', async (t) => {
  const model = tinyModel(6);
  const params = paramsOf(model);
  const evalOnly: Model = { ...model, apply: (p, x, _training, ops) => model.apply(p, x, false, ops) };
  const before = tf.memory().numTensors;
  await t.rejects(recomputeBatchNorm(evalOnly, params, syntheticBatches(1, [4]), stockOps), /BatchNorm layer 'c1' of model tiny1 saw no training-mode convBn call/);
  await t.rejects(recomputeBatchNorm(model, params, [], stockOps), /no training batches for model tiny1/);
  await t.rejects(recomputeBatchNorm(model, params, syntheticBatches(1, [4], 5), stockOps), /batch \(epoch 0, index 0\): 4 examples of 5×5×3 .* do not fit model tiny1's input \[6,6,3\]/);
  const { 'c1.w': _dropped, ...missing } = params;
  await t.rejects(recomputeBatchNorm(model, missing, syntheticBatches(1, [4]), stockOps), /no value for parameter 'c1.w'/);
  t.equal(tf.memory().numTensors, before, 'failures leak no tensors');
  t.equal(model.bnStats.get('c1')!.momentum, 0.1, 'momentum restored after a failure');
  model.dispose();
});

t.test('works on the zoo models (resnet20 with residual blocks and projections; cnn)', async (t) => {
  const batches = syntheticBatches(21, [6, 6, 3], 8);
  for (const name of ['resnet20', 'cnn'] as const) {
    const model = createModel(name, { seed: 1, inputShape: [8, 8, 3], numClasses: 3 });
    const params = paramsOf(model);
    const before = tf.memory().numTensors;
    const result = await recomputeBatchNorm(model, params, batches, stockOps);
    t.equal(tf.memory().numTensors, before, `${name}: numTensors unchanged`);
    t.same(Object.keys(result.mean).sort(), [...model.bnStats.keys()].sort(), `${name}: all ${model.bnStats.size} BatchNorm layers recomputed`);
    const first = [...model.bnStats.keys()][0];
    const truth = tf.tidy(() => trueStats(tf.conv2d(allInputs(model, batches), model.params.get(`${first}.w`) as unknown as tf.Tensor4D, 1, 'same')));
    const stats = model.bnStats.get(first)!;
    t.ok(maxRelativeError(stats.mean.dataSync(), truth.mean) < 1e-5, `${name}: first layer mean`);
    t.ok(maxRelativeError(stats.variance.dataSync(), truth.variance) < 1e-5, `${name}: first layer variance`);
    t.ok([...model.bnStats.values()].every((s) => s.momentum === 0.1));
    model.dispose();
  }
});
