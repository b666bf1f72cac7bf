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

t.test("the cpu backend's Add, Sub and Multiply stay bitwise equal to the stock JavaScript arithmetic", { skip: nativeUnavailable }, async (t) => {
  tf.dispose(nativeOps.addRelu(tf.zeros([1, 1, 1, 1]) as tf.Tensor4D, tf.zeros([1, 1, 1, 1]) as tf.Tensor4D)); // registers the kernels
  const a = tf.randomNormal([5000], 0, 1e3, 'float32', 3);
  const b = tf.randomNormal([5000], 0, 1e-3, 'float32', 4);
  const s = tf.scalar(0.9);
  const av = a.dataSync();
  const bv = b.dataSync();
  // What the stock kernels compute: the JavaScript double result stored into a Float32Array.
  const expected = (f: (x: number, y: number) => number, xs: ArrayLike<number>, ys: ArrayLike<number> | number): Float32Array =>
    Float32Array.from(xs, (x, i) => f(x, typeof ys === 'number' ? ys : ys[i]));
  const bits = (x: tf.Tensor): Buffer => Buffer.from((x.dataSync() as Float32Array).slice().buffer);
  const cases: [string, tf.Tensor, Float32Array][] = [
    ['a + b', tf.add(a, b), expected((x, y) => x + y, av, bv)],
    ['a − b', tf.sub(a, b), expected((x, y) => x - y, av, bv)],
    ['a × b', tf.mul(a, b), expected((x, y) => x * y, av, bv)],
    ['a × 0.9', tf.mul(a, s), expected((x, y) => x * y, av, Math.fround(0.9))],
    ['0.9 − a', tf.sub(s, a), expected((x, y) => y - x, av, Math.fround(0.9))],
  ];
  for (const [name, actual, want] of cases) t.ok(bits(actual).equals(Buffer.from(want.buffer)), `${name}: bitwise equal`);
  const broadcast = tf.add(tf.ones([2, 3]), tf.tensor1d([1, 2, 3]));
  t.same(Array.from(broadcast.dataSync()), [2, 3, 4, 2, 3, 4], 'other broadcasts still go to the stock kernel');
  // A float32 tensor cast from bool keeps a byte array on the cpu backend: the stock kernel takes it.
  const mask = tf.greater(a, 0).toFloat();
  const masked = tf.mul(a, mask);
  t.ok(bits(masked).equals(Buffer.from(expected((x, y) => x * y, av, Float32Array.from(av, (v) => (v > 0 ? 1 : 0))).buffer)), 'a × float(a > 0): bitwise equal, no error');
  tf.dispose([a, b, s, broadcast, mask, masked, ...cases.map((c) => c[1])]);
});
