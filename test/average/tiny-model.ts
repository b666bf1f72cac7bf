import * as tf from '@tensorflow/tfjs';
import type { RunningStats } from '../../src/compute/ops';
import { convBn, dense, type ArchNode } from '../../src/models/architecture';
import type { Model, ParamSpec } from '../../src/models/model';
import type { Batch } from '../../src/stream/batch';
import type { NamedArray, NamedArrays } from '../../src/util/named-arrays';
import { Rng } from '../../src/util/rng';

/**
 * A small Model for tests of the averaging and calibration stages (the real models live in src/models):
 * convBn(3×3, 3→4, relu) [→ convBn(3×3 stride 2, 4→5, relu)] → global average pool → dense → 3 logits.
 */
export function tinyModel(seed: number, twoBlocks = false, size = 6): Model {
  const rng = new Rng(seed);
  const specs: ParamSpec[] = [
    { name: 'c1.w', shape: [3, 3, 3, 4], kind: 'conv', maskable: true },
    { name: 'c1.gamma', shape: [4], kind: 'bnGamma', maskable: false },
    { name: 'c1.beta', shape: [4], kind: 'bnBeta', maskable: false },
  ];
  if (twoBlocks) {
    specs.push(
      { name: 'c2.w', shape: [3, 3, 4, 5], kind: 'conv', maskable: true },
      { name: 'c2.gamma', shape: [5], kind: 'bnGamma', maskable: false },
      { name: 'c2.beta', shape: [5], kind: 'bnBeta', maskable: false },
    );
  }
  const features = twoBlocks ? 5 : 4;
  specs.push({ name: 'fc.w', shape: [features, 3], kind: 'dense', maskable: false }, { name: 'fc.b', shape: [3], kind: 'bias', maskable: false });
  const params = new Map<string, tf.Variable>();
  for (const spec of specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: n }, () =>
      spec.kind === 'bnGamma' ? 1 + 0.2 * rng.nextNormal() : spec.kind === 'bias' || spec.kind === 'bnBeta' ? 0.1 * rng.nextNormal() : 0.5 * rng.nextNormal(),
    );
    params.set(spec.name, tf.variable(tf.tensor(values, [...spec.shape]), true));
  }
  const stats = (channels: number): RunningStats => ({
    mean: tf.variable(tf.zeros([channels]), false),
    variance: tf.variable(tf.ones([channels]), false),
    momentum: 0.1,
    epsilon: 1e-5,
  });
  const bnStats = new Map<string, RunningStats>([['c1', stats(4)]]);
  if (twoBlocks) bnStats.set('c2', stats(5));
  // The same network as an Architecture (required by Model; used for export, not by apply below).
  const nodes: ArchNode[] = [convBn('c1', 4, 3), ...(twoBlocks ? [convBn('c2', 5, 3, 2)] : []), { op: 'globalAvgPool' }, dense('fc', 3, false, false)];
  const name = twoBlocks ? 'tiny2' : 'tiny1';
  return {
    name,
    inputShape: [size, size, 3],
    numClasses: 3,
    architecture: { name, inputShape: [size, size, 3], numClasses: 3, nodes },
    specs,
    params,
    bnStats,
    apply(p, x, training, ops) {
      let h = ops.convBn(x as tf.Tensor4D, p['c1.w'] as tf.Tensor4D, { gamma: p['c1.gamma'] as tf.Tensor1D, beta: p['c1.beta'] as tf.Tensor1D, stats: bnStats.get('c1')! }, { stride: 1, padding: 'same', relu: true, training });
      if (twoBlocks) {
        h = ops.convBn(h, p['c2.w'] as tf.Tensor4D, { gamma: p['c2.gamma'] as tf.Tensor1D, beta: p['c2.beta'] as tf.Tensor1D, stats: bnStats.get('c2')! }, { stride: 2, padding: 'same', relu: true, training });
      }
      return ops.dense(ops.globalAvgPool(h), p['fc.w'] as tf.Tensor2D, p['fc.b'] as tf.Tensor1D, false);
    },
    dispose() {
      for (const v of params.values()) v.dispose();
      for (const s of bnStats.values()) {
        s.mean.dispose();
        s.variance.dispose();
      }
    },
  };
}

/** The model's variables as plain arrays. */
export function paramsOf(model: Model): NamedArrays {
  const out: Record<string, NamedArray> = {};
  for (const [name, v] of model.params) out[name] = { shape: v.shape, values: Float32Array.from(v.dataSync()) };
  return out;
}

/**
 * `count` images with labels, made so that batch means differ: a per-example brightness that grows
 * with the index, plus per-channel offsets. Split into batches of the given sizes, in order.
 */
export function syntheticBatches(seed: number, sizes: readonly number[], size = 6): Batch[] {
  const rng = new Rng(seed);
  const batches: Batch[] = [];
  let example = 0;
  sizes.forEach((n, index) => {
    const x = new Float32Array(n * size * size * 3);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++, example++) {
      labels[i] = rng.nextInt(3);
      for (let j = 0; j < size * size; j++) {
        for (let c = 0; c < 3; c++) x[(i * size * size + j) * 3 + c] = rng.nextNormal() + 0.05 * example + (c - 1) * 0.7 + 0.5 * labels[i];
      }
    }
    batches.push({ epoch: 0, index, size: n, height: size, width: size, channels: 3, x, labels });
  });
  return batches;
}
