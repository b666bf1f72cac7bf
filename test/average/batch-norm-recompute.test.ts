import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, of, type Observable } from 'rxjs';
import t from 'tap';
import { batchNormPass, recomputeBatchNorm } from '../../src/average/batch-norm-recompute';
import { channelStats } from '../../src/data/split';
import type { ImageDataset } from '../../src/data/types';
import { evalStream } from '../../src/stream/batch-stream';
import { Rng } from '../../src/util/rng';
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

/**
 * A class-sorted image set (as an image folder reads): each class's pixels centred on its own colour, so
 * that batches of one class have very different statistics from mixed ones.
 */
function classSortedDataset(count: number, size: number, classes: number, seed: number, brightness = 0): ImageDataset {
  const rng = new Rng(seed);
  const per = size * size * 3;
  const images = new Uint8Array(count * per);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = Math.floor((i * classes) / count);
    labels[i] = label;
    for (let p = 0; p < per; p++) {
      const centre = brightness > 0 ? brightness : 40 + ((label * 53 + (p % 3) * 97) % 180);
      images[i * per + p] = Math.max(0, Math.min(255, Math.round(centre + 25 * rng.nextNormal())));
    }
  }
  return { source: `class-sorted(${count})`, count, height: size, width: size, channels: 3, images, labels, classNames: Array.from({ length: classes }, (_, k) => `c${k}`) };
}

function permuted(dataset: ImageDataset, seed: number): ImageDataset {
  const order = new Rng(seed).permutation(dataset.count);
  const per = dataset.height * dataset.width * dataset.channels;
  const images = new Uint8Array(dataset.images.length);
  const labels = new Int32Array(dataset.count);
  order.forEach((from, to) => {
    images.set(dataset.images.subarray(from * per, (from + 1) * per), to * per);
    labels[to] = dataset.labels[from];
  });
  return { ...dataset, source: `${dataset.source} permuted`, images, labels };
}

/** Layer statistics after a recompute of `model` (its own weights) over `batches`. */
async function statsAfter(model: Model, batches: Observable<Batch>): Promise<Record<string, Float32Array>> {
  const result = await recomputeBatchNorm(model, paramsOf(model), batches, stockOps);
  const out: Record<string, Float32Array> = {};
  for (const layer of Object.keys(result.mean)) {
    out[`mean/${layer}`] = result.mean[layer].values;
    out[`variance/${layer}`] = result.variance[layer].values;
  }
  return out;
}

/** Largest difference of the means in units of the standard deviation, and largest relative variance difference. */
function statDistance(a: Record<string, Float32Array>, b: Record<string, Float32Array>, layer: string): { mean: number; variance: number } {
  const sd = Array.from(b[`variance/${layer}`], Math.sqrt);
  return {
    mean: Math.max(...Array.from(a[`mean/${layer}`], (v, c) => Math.abs(v - b[`mean/${layer}`][c]) / sd[c])),
    variance: maxRelativeError(a[`variance/${layer}`], b[`variance/${layer}`]),
  };
}

t.test('the recompute pass is shuffled: class-sorted data gives the statistics of the same data in random order', async (t) => {
  const sorted = classSortedDataset(768, 6, 4, 3);
  const shuffled = permuted(sorted, 9);
  const pass = (dataset: ImageDataset) => batchNormPass({ dataset, stats: channelStats(dataset), batchSize: 32, seed: 5, augment: false, workers: 0 });
  const model = tinyModel(4, true);
  const fromSorted = await statsAfter(model, pass(sorted));
  const fromShuffled = await statsAfter(model, pass(shuffled));
  // The old behaviour, for contrast: batches in data set order, one class each.
  const inOrder = await statsAfter(model, evalStream({ dataset: sorted, stats: channelStats(sorted), batchSize: 32, workers: 0 }));

  const first = statDistance(fromSorted, fromShuffled, 'c1');
  t.ok(first.mean < 1e-5 && first.variance < 1e-5, `layer 1 sees every image once either way: identical pooled statistics (${first.mean}, ${first.variance})`);
  const same = statDistance(fromSorted, fromShuffled, 'c2');
  const skewed = statDistance(inOrder, fromShuffled, 'c2');
  t.comment(`layer 2: sorted vs shuffled input |Δmean|/sd ${same.mean.toFixed(4)}, Δvar ${same.variance.toFixed(4)}; class-sorted batches ${skewed.mean.toFixed(4)}, ${skewed.variance.toFixed(4)}`);
  t.ok(same.mean < 0.05 && same.variance < 0.05, 'layer 2 (after training-mode BatchNorm): within sampling error');
  t.ok(skewed.variance > 4 * Math.max(same.variance, 0.05), 'batches of one class each would skew layer 2: the check discriminates');
  model.dispose();
});

t.test('the recompute pass uses the training augmentation when training used it; same seed, same statistics', async (t) => {
  // Bright images: zero padding (pixel value 0) lies far below them, so padded crops move the statistics.
  const bright = classSortedDataset(256, 6, 2, 4, 220);
  const stats = channelStats(bright);
  const pass = (augment: boolean, seed: number) => batchNormPass({ dataset: bright, stats, batchSize: 32, seed, augment, workers: 0 });
  const model = tinyModel(2, true);
  const augmented = await statsAfter(model, pass(true, 5));
  const again = await statsAfter(model, pass(true, 5));
  const otherSeed = await statsAfter(model, pass(true, 6));
  const clean = await statsAfter(model, pass(false, 5));
  const bytes = (s: Record<string, Float32Array>) => Buffer.concat(Object.keys(s).sort().map((k) => Buffer.from(s[k].buffer, s[k].byteOffset, s[k].byteLength)));
  t.ok(bytes(augmented).equals(bytes(again)), 'same seed: bit-identical statistics');
  t.notOk(bytes(augmented).equals(bytes(otherSeed)), 'another seed: another pass');
  const byAugmentation = statDistance(clean, augmented, 'c1');
  const bySeed = statDistance(otherSeed, augmented, 'c1');
  t.comment(`layer 1: augmented vs clean |Δmean|/sd ${byAugmentation.mean.toFixed(3)}; two augmented passes ${bySeed.mean.toFixed(3)}`);
  t.ok(byAugmentation.mean > 0.3, 'padded crops move layer 1 statistics far from the clean images');
  t.ok(bySeed.mean < byAugmentation.mean / 5, 'two augmented passes agree: the shift is the augmentation, not noise');
  model.dispose();
});
