import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon, type NativeAddon } from '../../src/compute/native-addon';
import { nativeOps } from '../../src/compute/native-ops';
import { nativeUnavailable } from './compare';

t.before(async () => {
  await tf.setBackend('cpu');
});

const backendValues = (x: tf.Tensor): unknown =>
  (tf.backend() as unknown as { data: { get(id: object): { values: unknown } } }).data.get(x.dataId).values;

t.test('kernels read their inputs and write their outputs in the cpu backend\'s own arrays (zero copy)', { skip: nativeUnavailable }, async (t) => {
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
  const original = addon.convForward;
  const seen: Float32Array[] = [];
  addon.convForward = (geometry, input, filter, output) => {
    seen.push(input, filter, output);
    original(geometry, input, filter, output);
  };
  try {
    const stats = { mean: tf.variable(tf.zeros([4]), false), variance: tf.variable(tf.ones([4]), false), momentum: 0.1, epsilon: 1e-5 };
    const z = tf.tidy(() => nativeOps.convBn(x, w, { gamma: tf.ones([4]), beta: tf.zeros([4]), stats }, { stride: 1, padding: 'same', relu: true, training: false }));
    t.equal(seen.length, 3, 'the convolution ran natively');
    t.equal(seen[0], backendValues(x), 'input read in place');
    t.equal(seen[1], backendValues(w), 'filter read in place');
    tf.dispose([z, stats.mean, stats.variance]);
  } finally {
    addon.convForward = original;
  }
  // The output side: a native kernel's result is the array the addon wrote.
  let written: Float32Array | undefined;
  const addRelu = addon.addRelu;
  addon.addRelu = (size, a, b, out) => {
    written = out;
    addRelu(size, a, b, out);
  };
  try {
    const sum = nativeOps.addRelu(x, x);
    t.equal(backendValues(sum), written, 'output stored as written');
    sum.dispose();
  } finally {
    addon.addRelu = addRelu;
  }
  tf.dispose([x, w]);
});

t.test("the cpu backend's Add gives bitwise the stock result after the native one takes over same-shape adds", { skip: nativeUnavailable }, async (t) => {
  const a = tf.randomNormal([5000], 0, 1e3, 'float32', 3);
  const b = tf.randomNormal([5000], 0, 1e-3, 'float32', 4);
  // The stock kernel's result, computed element by element in JavaScript.
  const av = a.dataSync();
  const bv = b.dataSync();
  const expected = new Float32Array(av.length);
  for (let i = 0; i < av.length; i++) expected[i] = av[i] + bv[i];
  tf.dispose(nativeOps.addRelu(tf.zeros([1, 1, 1, 1]) as tf.Tensor4D, tf.zeros([1, 1, 1, 1]) as tf.Tensor4D)); // registers the kernels
  const sum = tf.add(a, b);
  t.same(Buffer.from((sum.dataSync() as Float32Array).buffer), Buffer.from(expected.buffer));
  const broadcast = tf.add(tf.ones([2, 3]), tf.tensor1d([1, 2, 3]));
  t.same(Array.from(broadcast.dataSync()), [2, 3, 4, 2, 3, 4], 'broadcasting still goes to the stock kernel');
  tf.dispose([a, b, sum, broadcast]);
});
