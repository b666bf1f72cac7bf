import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon, type NativeAddon } from '../../src/compute/native-addon';
import { convGeometry } from '../../src/compute/native-kernels';
import { nativeOps } from '../../src/compute/native-ops';
import type { ConvBnOptions, Ops } from '../../src/compute/ops';
import { stockOps } from '../../src/compute/stock-ops';
import { convBnResult, nativeUnavailable, relativeError, runningStats, TOLERANCE } from './compare';

const skip = nativeUnavailable;

t.before(async () => {
  await tf.setBackend('cpu');
});

const tensorsOf = (result: object): tf.Tensor[] => Object.values(result).filter((v): v is tf.Tensor => v instanceof tf.Tensor);

t.test('convBn matches stockOps: output, gradients of x, filter, gamma, beta, and running statistics', { skip }, async (t) => {
  let cases = 0;
  for (const stride of [1, 2]) {
    for (const kernel of [1, 3]) {
      for (const padding of ['same', 'valid'] as const) {
        for (const training of [true, false]) {
          for (const relu of [true, false]) {
            // Odd spatial sizes and channel counts on purpose.
            const height = stride === 2 ? 9 : 7;
            const x = tf.randomNormal([3, height, height - 2, 5], 0.3, 1, 'float32', 1) as tf.Tensor4D;
            const filter = tf.randomNormal([kernel, kernel, 5, 7], 0, 0.4, 'float32', 2) as tf.Tensor4D;
            const gamma = tf.randomUniform([7], 0.5, 1.5, 'float32', 3) as tf.Tensor1D;
            const beta = tf.randomNormal([7], 0, 0.3, 'float32', 4) as tf.Tensor1D;
            const opts: ConvBnOptions = { stride, padding, relu, training };
            const name = `stride ${stride}, kernel ${kernel}, ${padding}, ${training ? 'training' : 'eval'}, relu ${relu}`;
            const stock = convBnResult(stockOps, x, filter, gamma, beta, opts);
            const native = convBnResult(nativeOps, x, filter, gamma, beta, opts);
            for (const key of ['y', 'dx', 'dfilter', 'dgamma', 'dbeta', 'mean', 'variance'] as const) {
              const err = relativeError(native[key], stock[key]);
              t.ok(err < TOLERANCE, `${name}: ${key} relative error ${err.toExponential(2)}`);
            }
            t.equal(native.leaked, 0, `${name}: no tensor leaked`);
            tf.dispose([x, filter, gamma, beta, ...tensorsOf(stock), ...tensorsOf(native)]);
            cases++;
          }
        }
      }
    }
  }
  t.equal(cases, 32);
});

// Geometries where oneDNN 2.6's Winograd convolution gave a convBn wrong gradients (the input gradient
// 6% off); the default path (direct convolution) must match the stock ops there.
t.test('convBn with 3×3 stride-1 convolutions of ≥ 32 channels (resnet20 stage 2 at batch 128) matches stockOps on the default path', { skip }, async (t) => {
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  for (const [batch, height, width, channels] of [[128, 16, 16, 32], [16, 6, 5, 64], [2, 9, 7, 32]]) {
    const name = `${batch}×${height}×${width}×${channels}`;
    const x = tf.randomNormal([batch, height, width, channels], 0, 1, 'float32', 51) as tf.Tensor4D;
    const filter = tf.randomNormal([3, 3, channels, channels], 0, 0.2, 'float32', 52) as tf.Tensor4D;
    t.notOk(addon.convUsesWinograd(convGeometry(x.shape, filter.shape, { stride: 1, padding: 'same' })), `${name}: no Winograd by default`);
    const gamma = tf.randomUniform([channels], 0.5, 1.5, 'float32', 53) as tf.Tensor1D;
    const beta = tf.randomNormal([channels], 0, 0.3, 'float32', 54) as tf.Tensor1D;
    const opts: ConvBnOptions = { stride: 1, padding: 'same', relu: true, training: true };
    const stock = convBnResult(stockOps, x, filter, gamma, beta, opts);
    const native = convBnResult(nativeOps, x, filter, gamma, beta, opts);
    for (const key of ['y', 'dx', 'dfilter', 'dgamma', 'dbeta', 'mean', 'variance'] as const) {
      const err = relativeError(native[key], stock[key]);
      t.ok(err < TOLERANCE, `${name}: ${key} relative error ${err.toExponential(2)}`);
    }
    tf.dispose([x, filter, gamma, beta, ...tensorsOf(stock), ...tensorsOf(native)]);
  }
});

t.test('convBn filter gradient agrees with central finite differences (training mode, stride 2)', { skip }, async (t) => {
  const x = tf.randomNormal([2, 7, 7, 3], 0, 1, 'float32', 21) as tf.Tensor4D;
  const filter = tf.randomNormal([3, 3, 3, 4], 0, 0.5, 'float32', 22) as tf.Tensor4D;
  const gamma = tf.randomUniform([4], 0.5, 1.5, 'float32', 23) as tf.Tensor1D;
  const beta = tf.randomNormal([4], 0, 0.3, 'float32', 24) as tf.Tensor1D;
  const upstream = tf.randomNormal([2, 4, 4, 4], 0, 1, 'float32', 25);
  const stats = runningStats(4);
  const opts: ConvBnOptions = { stride: 2, padding: 'same', relu: true, training: true };
  const loss = (f: tf.Tensor): number =>
    tf.tidy(() => tf.sum(tf.mul(nativeOps.convBn(x, f as tf.Tensor4D, { gamma, beta, stats }, opts), upstream)).dataSync()[0]);
  const analytic = tf.tidy(() => tf.grads((f: tf.Tensor) => tf.sum(tf.mul(nativeOps.convBn(x, f as tf.Tensor4D, { gamma, beta, stats }, opts), upstream)))([filter])[0]);
  const a = analytic.dataSync() as Float32Array;
  const base = filter.dataSync().slice();
  const h = 1e-2;
  let worst = 0;
  const scale = Math.max(...Array.from(a, Math.abs));
  for (let i = 0; i < base.length; i += 7) {
    const plus = base.slice();
    plus[i] += h;
    const minus = base.slice();
    minus[i] -= h;
    const fPlus = tf.tensor(plus, filter.shape);
    const fMinus = tf.tensor(minus, filter.shape);
    const numeric = (loss(fPlus) - loss(fMinus)) / (2 * h);
    tf.dispose([fPlus, fMinus]);
    worst = Math.max(worst, Math.abs(numeric - a[i]) / scale);
  }
  // float32 central differences are good to ~1e-3 of the gradient's scale at this step size.
  t.ok(worst < 1e-2, `finite differences agree to ${worst.toExponential(2)} of the gradient scale`);
  tf.dispose([x, filter, gamma, beta, upstream, analytic, stats.mean, stats.variance]);
});

/** Compares op(inputs) and its gradients with respect to every input between stock and native. */
function compareOp(t: Test, name: string, inputs: tf.Tensor[], op: (ops: Ops, ...xs: tf.Tensor[]) => tf.Tensor): void {
  const results = [stockOps, nativeOps].map((ops) => {
    const before = tf.memory().numTensors;
    const out = tf.tidy(() => {
      const y = op(ops, ...inputs);
      const upstream = tf.randomNormal(y.shape, 0, 1, 'float32', 31);
      return [y, ...tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(op(ops, ...xs), upstream)))(inputs)];
    });
    t.equal(tf.memory().numTensors - before, out.length, `${name} (${ops.name}): no tensor leaked`);
    return out;
  });
  results[0].forEach((reference, i) => {
    const err = relativeError(results[1][i], reference);
    t.ok(err < TOLERANCE, `${name}: ${i === 0 ? 'output' : `gradient ${i}`} relative error ${err.toExponential(2)}`);
  });
  tf.dispose(results.flat());
}

t.test('addRelu, maxPool2, globalAvgPool, dense and crossEntropy match stockOps with their gradients', { skip }, async (t) => {
  const a = tf.randomNormal([2, 5, 3, 7], 0, 1, 'float32', 41);
  const b = tf.randomNormal([2, 5, 3, 7], 0, 1, 'float32', 42);
  compareOp(t, 'addRelu', [a, b], (ops, p, q) => ops.addRelu(p as tf.Tensor4D, q as tf.Tensor4D));
  compareOp(t, 'addRelu of a tensor with itself', [a], (ops, p) => ops.addRelu(p as tf.Tensor4D, p as tf.Tensor4D));
  for (const shape of [[2, 7, 5, 3], [3, 8, 6, 4], [1, 3, 3, 17]]) {
    const x = tf.randomNormal(shape, 0, 1, 'float32', 43);
    compareOp(t, `maxPool2 [${shape}]`, [x], (ops, p) => ops.maxPool2(p as tf.Tensor4D));
    // Ties (as after a ReLU): the gradient goes to the first maximum of each window, as in tfjs.
    const ties = tf.relu(tf.round(tf.mul(x, 2)));
    compareOp(t, `maxPool2 with ties [${shape}]`, [ties], (ops, p) => ops.maxPool2(p as tf.Tensor4D));
    compareOp(t, `globalAvgPool [${shape}]`, [x], (ops, p) => ops.globalAvgPool(p as tf.Tensor4D));
    tf.dispose([x, ties]);
  }
  const x = tf.randomNormal([6, 17], 0, 1, 'float32', 44);
  const w = tf.randomNormal([17, 5], 0, 0.5, 'float32', 45);
  const bias = tf.randomNormal([5], 0, 0.5, 'float32', 46);
  for (const relu of [true, false]) {
    compareOp(t, `dense relu=${relu}`, [x, w, bias], (ops, p, q, r) => ops.dense(p as tf.Tensor2D, q as tf.Tensor2D, r as tf.Tensor1D, relu));
  }
  for (const dtype of ['int32', 'float32'] as const) {
    const labels = tf.tensor1d([0, 4, 2, 2, 1, 3], dtype);
    const logits = tf.randomNormal([6, 5], 0, 2, 'float32', 47);
    compareOp(t, `crossEntropy (${dtype} labels)`, [logits], (ops, p) => ops.crossEntropy(p as tf.Tensor2D, labels));
    tf.dispose([labels, logits]);
  }
  tf.dispose([a, b, x, w, bias]);
});

t.test('crossEntropy rejects labels outside the class range with a clear error', { skip }, async (t) => {
  const logits = tf.zeros([2, 3]) as tf.Tensor2D;
  const labels = tf.tensor1d([0, 3], 'int32');
  t.throws(() => nativeOps.crossEntropy(logits, labels), /label 3 at row 1 is outside \[0, 3\)/);
  tf.dispose([logits, labels]);
});

t.test('running statistics updated on the backend arrays are bitwise those of the tfjs op chain', { skip }, async (t) => {
  const { updateRunningStatsDirect } = await import('../../src/compute/native-ops');
  const { updateRunningStats } = await import('../../src/compute/stock-ops');
  for (const [channels, momentum, count] of [[64, 0.1, 128 * 32 * 32], [300, 0.01, 7], [5, 0.5, 1]] as const) {
    const viaOps = { ...runningStats(channels), momentum };
    const direct = { ...runningStats(channels), momentum };
    const start = viaOps.mean.dataSync()[0];
    for (let step = 0; step < 3; step++) {
      const batchMean = tf.randomNormal([channels], 0, 1, 'float32', 20 + step);
      const batchVariance = tf.randomUniform([channels], 0, 3, 'float32', 30 + step);
      updateRunningStats(viaOps, batchMean, batchVariance, count);
      updateRunningStatsDirect(direct, batchMean, batchVariance, count);
      tf.dispose([batchMean, batchVariance]);
    }
    for (const key of ['mean', 'variance'] as const) {
      const a = viaOps[key].dataSync();
      const b = direct[key].dataSync();
      t.equal(a.findIndex((v, i) => !Object.is(v, b[i])), -1, `${channels} channels, momentum ${momentum}, count ${count}: running ${key} bitwise equal`);
    }
    t.not(viaOps.mean.dataSync()[0], start, 'and the statistics did move');
    tf.dispose([viaOps.mean, viaOps.variance, direct.mean, direct.variance]);
  }
});
