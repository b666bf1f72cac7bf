import t from 'tap';
import { loadNativeAddon, type NativeAddon } from '../../src/compute/native-addon';
import { nativeUnavailable } from './compare';

// The native kernels flush denormal floats to zero (addon.cc, DenormalsFlushed); JavaScript keeps IEEE
// arithmetic on the same thread between calls.
const FLOAT32_MIN_NORMAL = 1.1754944e-38;

t.test('the native kernels flush denormals, in the calling thread and in every worker; JavaScript keeps them', { skip: nativeUnavailable }, async (t) => {
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  t.same(addon.mxcsrFlushesDenormals(), [true, true], 'inside a call: the calling thread and every OpenMP worker');

  // 1e-20 · 1e-20 = 1e-40, a denormal float32: flushed to 0 by the kernel, on one thread and split over threads.
  for (const size of [1, 1 << 17]) {
    const a = new Float32Array(size).fill(1e-20);
    const z = new Float32Array(size).fill(7);
    addon.binary(2, size, a, a, z);
    t.ok(z.every((v) => v === 0), `${size} products of 1e-20 · 1e-20 are 0`);
    // A denormal input reads as zero: 1e-40 + 0 is 0, not 1e-40.
    const tiny = new Float32Array(size).fill(1e-40);
    t.ok(tiny[0] > 0 && tiny[0] < FLOAT32_MIN_NORMAL, 'the input holds a denormal');
    addon.binary(0, size, tiny, new Float32Array(size), z);
    t.ok(z.every((v) => v === 0), `${size} denormal inputs read as 0`);
  }

  // Between calls the thread's arithmetic is IEEE again: float32 and float64 denormals survive.
  const product = new Float32Array(1);
  product[0] = 1e-20;
  product[0] = product[0] * product[0];
  t.ok(product[0] > 0 && product[0] < FLOAT32_MIN_NORMAL, `JavaScript still makes the float32 denormal 1e-40 (${product[0]})`);
  t.ok(Math.fround(1e-40) > 0, 'Math.fround keeps a denormal');
  const double = Number('1e-160') * Number('1e-160');
  t.ok(double > 0 && double < 2.2250738585072014e-308, `double denormals survive (${double})`);

  // A worker team grown after start-up flushes too.
  addon.setNumThreads(4);
  try {
    t.same(addon.mxcsrFlushesDenormals(), [true, true], 'after setNumThreads(4)');
  } finally {
    addon.setNumThreads(2);
  }
});
