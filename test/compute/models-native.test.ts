import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { nativeOps } from '../../src/compute/native-ops';
import type { Ops } from '../../src/compute/ops';
import { stockOps } from '../../src/compute/stock-ops';
import { createModel } from '../../src/models/build';
import type { Model } from '../../src/models/model';
import { nativeUnavailable, relativeError, TOLERANCE } from './compare';

t.before(async () => {
  await tf.setBackend('cpu');
});

/** Loss, logits and the gradient of every parameter for one training-mode pass. */
function trainingPass(model: Model, ops: Ops, x: tf.Tensor, labels: tf.Tensor1D): { loss: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const vars = [...model.params.values()];
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => ops.crossEntropy(model.apply(Object.fromEntries(model.params), x, true, ops), labels), vars);
    // variableGrads keys by tfjs variable name; re-key by parameter name.
    const byParam = Object.fromEntries([...model.params].map(([param, v]) => [param, grads[v.name]]));
    return { loss: value, grads: byParam };
  });
}

for (const name of ['cnn', 'resnet20'] as const) {
  t.test(`${name}: forward and backward agree between stockOps and nativeOps`, { skip: nativeUnavailable }, async (t) => {
    const opts = { seed: 7, inputShape: [8, 8, 3], numClasses: 10 };
    const stockModel = createModel(name, opts);
    const nativeModel = createModel(name, opts);
    const x = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 3);
    const labels = tf.tensor1d([1, 7, 3, 3], 'int32');

    const before = tf.memory().numTensors;
    const native = trainingPass(nativeModel, nativeOps, x, labels);
    t.equal(tf.memory().numTensors - before, 1 + nativeModel.params.size, 'only the loss and the gradients remain');
    const stock = trainingPass(stockModel, stockOps, x, labels);

    const lossErr = relativeError(native.loss, stock.loss);
    t.ok(lossErr < TOLERANCE, `loss relative error ${lossErr.toExponential(2)}`);
    let worst = 0;
    let worstName = '';
    for (const param of nativeModel.params.keys()) {
      const err = relativeError(native.grads[param], stock.grads[param]);
      if (err > worst) [worst, worstName] = [err, param];
    }
    t.ok(worst < TOLERANCE, `every parameter gradient within ${TOLERANCE} (worst ${worstName}: ${worst.toExponential(2)})`);
    let worstStats = 0;
    for (const [layer, stats] of nativeModel.bnStats) {
      const reference = stockModel.bnStats.get(layer)!;
      worstStats = Math.max(worstStats, relativeError(stats.mean, reference.mean), relativeError(stats.variance, reference.variance));
    }
    t.ok(worstStats < TOLERANCE, `running statistics updated alike (worst ${worstStats.toExponential(2)})`);

    const evalLogits = [stockOps, nativeOps].map((ops, i) =>
      tf.tidy(() => (i === 0 ? stockModel : nativeModel).apply(Object.fromEntries((i === 0 ? stockModel : nativeModel).params), x, false, ops)));
    const evalErr = relativeError(evalLogits[1], evalLogits[0]);
    t.ok(evalErr < TOLERANCE, `evaluation-mode logits relative error ${evalErr.toExponential(2)}`);

    tf.dispose([x, labels, native.loss, stock.loss, ...Object.values(native.grads), ...Object.values(stock.grads), ...evalLogits]);
    stockModel.dispose();
    nativeModel.dispose();
  });
}

t.test('nativeOps are deterministic: the same model, seed and batch give bitwise the same gradients', { skip: nativeUnavailable }, async (t) => {
  const opts = { seed: 3, inputShape: [16, 16, 3], numClasses: 10 };
  const x = tf.randomNormal([8, 16, 16, 3], 0, 1, 'float32', 5);
  const labels = tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32');
  const runs = [0, 1].map(() => {
    const model = createModel('cnn', opts);
    const pass = trainingPass(model, nativeOps, x, labels);
    const bytes = Object.values(pass.grads).map((g) => Buffer.from((g.dataSync() as Float32Array).slice().buffer));
    tf.dispose([pass.loss, ...Object.values(pass.grads)]);
    model.dispose();
    return Buffer.concat(bytes);
  });
  t.ok(runs[0].equals(runs[1]), 'identical gradient bytes');
  tf.dispose([x, labels]);
});

t.test('cnn with masks in training: each conv-conv-pool stage is one pair kernel with its pool, and matches the dense path', { skip: nativeUnavailable }, async (t) => {
  const { KERNELS } = await import('../../src/compute/native-kernels');
  const { setSparseComputeMode, sparseComputeMode } = await import('../../src/compute/sparse-selection');
  const opts = { seed: 11, inputShape: [12, 10, 3], numClasses: 10 };
  const x = tf.randomNormal([20, 12, 10, 3], 0, 1, 'float32', 12);
  const labels = tf.tensor1d([...Array(20).keys()].map((i) => i % 10), 'int32');
  // Masks at density ~0.1 with the pruned weights zero, as a sparse method leaves them.
  const probe = createModel('cnn', opts);
  const active: Record<string, tf.Tensor> = {};
  for (const spec of probe.specs.filter((s) => s.kind === 'conv')) {
    const u = tf.randomUniform(spec.shape as number[], 0, 1, 'float32', spec.name.length);
    active[spec.name] = tf.tensor((u.dataSync() as Float32Array).map((v) => (v > 0.9 ? 1 : 0)), u.shape);
    u.dispose();
  }
  probe.dispose();
  const pass = (mode: 'on' | 'off') => {
    const previous = sparseComputeMode();
    setSparseComputeMode(mode);
    const model = createModel('cnn', opts);
    try {
      for (const [name, mask] of Object.entries(active)) model.params.get(name)!.assign(tf.mul(model.params.get(name)!, mask));
      const vars = [...model.params.values()];
      return tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => nativeOps.crossEntropy(model.apply(Object.fromEntries(model.params), x, true, nativeOps, active), labels), vars);
        return [value, ...[...model.params].map(([param, v]) => (active[param] ? tf.mul(grads[v.name], active[param]) : grads[v.name]))];
      });
    } finally {
      setSparseComputeMode(previous);
      model.dispose();
    }
  };
  let sparse!: tf.Tensor[];
  const profile = await tf.profile(() => {
    sparse = pass('on');
  });
  t.equal(profile.kernels.filter((k) => k.name === KERNELS.sparseConvBnPair).length, 2, 'two pair kernels');
  t.notOk(profile.kernelNames.includes(KERNELS.maxPool2), 'no separate pool kernel');
  const dense = pass('off');
  const worst = Math.max(...sparse.map((s, i) => relativeError(s, dense[i])));
  t.ok(worst < TOLERANCE, `loss and every gradient within ${TOLERANCE} of the dense path (worst ${worst.toExponential(2)})`);
  tf.dispose([x, labels, ...Object.values(active), ...sparse, ...dense]);
});
