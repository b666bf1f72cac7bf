import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { ConvBnOptions } from '../../src/compute/ops';
import { conv2dPortableGrad, portableOps } from '../../src/compute/portable-ops';
import { stockOps } from '../../src/compute/stock-ops';
import { relativeError, TOLERANCE } from './compare';

t.before(async () => {
  await tf.setBackend('cpu');
});

const cases = [
  { height: 7, kernel: 3, stride: 1, padding: 'same' },
  { height: 8, kernel: 3, stride: 2, padding: 'same' },
  { height: 9, kernel: 3, stride: 2, padding: 'same' },
  { height: 9, kernel: 1, stride: 2, padding: 'valid' },
  { height: 9, kernel: 3, stride: 2, padding: 'valid' },
  { height: 6, kernel: 3, stride: 1, padding: 'valid' },
  { height: 7, kernel: 1, stride: 1, padding: 'same' },
] as const;

const convGrads = (conv: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D, x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor[] =>
  tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.square(conv(xx as tf.Tensor4D, ww as tf.Tensor4D))))([x, w]);

t.test("the portable convolution gradient equals tfjs's own on the cpu backend", async (t) => {
  for (const c of cases) {
    const x = tf.randomNormal([2, c.height, c.height - 1, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal([c.kernel, c.kernel, 3, 5], 0, 1, 'float32', 2) as tf.Tensor4D;
    const reference = convGrads((a, b) => tf.conv2d(a, b, c.stride, c.padding), x, w);
    const ours = convGrads((a, b) => conv2dPortableGrad(a, b, c.stride, c.padding), x, w);
    const name = `height ${c.height}, kernel ${c.kernel}, stride ${c.stride}, ${c.padding}`;
    t.ok(relativeError(ours[0], reference[0]) < TOLERANCE, `${name}: dx`);
    t.ok(relativeError(ours[1], reference[1]) < TOLERANCE, `${name}: dw`);
    tf.dispose([x, w, ...reference, ...ours]);
  }
});

t.test('portableOps.convBn equals stockOps.convBn, and differentiates on wasm (no Conv2DBackpropFilter there)', async (t) => {
  const opts: ConvBnOptions = { stride: 2, padding: 'same', relu: true, training: false };
  const run = (ops: typeof stockOps): tf.Tensor[] => {
    const stats = { mean: tf.variable(tf.zeros([4]), false), variance: tf.variable(tf.ones([4]), false), momentum: 0.1, epsilon: 1e-5 };
    const x = tf.randomNormal([2, 7, 7, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 6) as tf.Tensor4D;
    const gamma = tf.ones([4]) as tf.Tensor1D;
    const beta = tf.zeros([4]) as tf.Tensor1D;
    const grads = tf.grads((ww: tf.Tensor) => tf.sum(ops.convBn(x, ww as tf.Tensor4D, { gamma, beta, stats }, opts)))([w]);
    const values = grads.map((g) => tf.tensor(g.dataSync(), g.shape)); // copy out of whichever backend
    tf.dispose([x, w, gamma, beta, stats.mean, stats.variance, ...grads]);
    return values;
  };
  const stock = run(stockOps);
  const portable = run(portableOps);
  t.ok(relativeError(portable[0], stock[0]) < TOLERANCE, 'cpu: filter gradient equal');
  await tf.setBackend('wasm');
  t.throws(() => run(stockOps), /Conv2DBackpropFilter/, 'stock tfjs cannot differentiate a conv on wasm');
  const onWasm = run(portableOps);
  await tf.setBackend('cpu');
  t.ok(relativeError(tf.tensor(onWasm[0].dataSync(), onWasm[0].shape), stock[0]) < TOLERANCE, 'wasm: filter gradient equal to cpu stock');
});
