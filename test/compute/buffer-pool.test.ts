import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { BufferPool } from '../../src/compute/buffer-pool';
import { requireNativeAddon } from '../../src/compute/native-addon';
import { nativeUnavailable } from './compare';

t.before(async () => {
  await tf.setBackend('cpu');
});

const n = BufferPool.MIN_LENGTH;

t.test('an array comes back to the pool when its tensor is disposed, and is handed out again', async (t) => {
  const pool = new BufferPool();
  const first = pool.allocate(n);
  const tensor = tf.tensor(first, [n]);
  t.equal((tf.backend() as unknown as { data: { get(id: object): { values: unknown } } }).data.get(tensor.dataId).values, first,
    'tf.tensor keeps the very array on the cpu backend (no copy)');
  t.not(pool.allocate(n), first, 'not reused while its tensor lives');
  tensor.dispose();
  t.equal(pool.allocate(n), first, 'reused after dispose');
  t.equal(pool.stats().recycled, 1);
});

t.test('a clone shares the data: the array is recycled only when the last reference goes', async (t) => {
  const pool = new BufferPool();
  const array = pool.allocate(n);
  const tensor = tf.tensor(array, [n]);
  const clone = tensor.clone();
  tensor.dispose();
  t.equal(pool.stats().recycled, 0, 'still referenced by the clone');
  clone.dispose();
  t.equal(pool.stats().recycled, 1);
});

t.test('an array read with dataSync escapes: the reader keeps its values', async (t) => {
  const pool = new BufferPool();
  const array = pool.allocate(n).fill(3);
  const tensor = tf.tensor(array, [n]);
  const read = tensor.dataSync();
  tensor.dispose();
  const next = pool.allocate(n);
  t.not(next, array, 'not recycled');
  next.fill(7);
  t.equal(read[0], 3, 'what the reader holds is unchanged');
  t.equal(pool.stats().escaped, 1);
});

t.test('an array viewed by a slice escapes: the slice keeps its values after the source is disposed', async (t) => {
  const pool = new BufferPool();
  const array = pool.allocate(n);
  for (let i = 0; i < n; i++) array[i] = i;
  const tensor = tf.tensor(array, [n / 4, 4]);
  const rows = tf.slice(tensor, [1, 0], [2, 4]); // contiguous: tfjs returns a subarray view
  tensor.dispose();
  pool.allocate(n).fill(-1);
  t.same(Array.from(rows.dataSync()), [4, 5, 6, 7, 8, 9, 10, 11]);
  rows.dispose();
  t.equal(pool.stats().recycled, 0);
});

t.test('an attached companion is recycled with its owner, and not before', async (t) => {
  const pool = new BufferPool();
  const owner = pool.allocate(n);
  const companion = pool.allocate(2 * n);
  const tensor = tf.tensor(owner, [n]);
  pool.attach(owner, companion);
  t.not(pool.allocate(2 * n), companion, 'not reused while the owner lives');
  tensor.dispose();
  t.equal(pool.allocate(2 * n), companion, 'reused once the owner is disposed');
  t.equal(pool.allocate(n), owner, 'the owner too');
});

t.test('small arrays are not pooled', async (t) => {
  const pool = new BufferPool();
  const small = pool.allocate(n - 1);
  tf.tensor(small, [n - 1]).dispose();
  t.not(pool.allocate(n - 1), small);
  t.same(pool.stats(), { allocated: 0, reused: 0, recycled: 0, escaped: 0, idleBytes: 0 });
});

t.test('trim drops idle arrays', async (t) => {
  const pool = new BufferPool();
  tf.tensor(pool.allocate(n), [n]).dispose();
  t.equal(pool.stats().idleBytes, 4 * n);
  pool.trim();
  t.equal(pool.stats().idleBytes, 0);
});

t.test('with alignWith, pool arrays are views at the offset that aligns them, recycled like any other', async (t) => {
  const pool = new BufferPool();
  // A stand-in for the addon: every buffer's data 16 bytes past a 64-byte boundary (what V8 does).
  pool.alignWith(() => 16);
  const array = pool.allocate(n);
  t.equal(array.length, n);
  t.equal(array.byteOffset, 48, '16 + 48 = 64');
  array.fill(3);
  const tensor = tf.tensor(array, [n]);
  t.equal(tensor.dataSync()[n - 1], 3, 'the view holds the values');
  const other = pool.allocate(n);
  tf.tensor(other, [n]).dispose();
  t.equal(pool.stats().escaped, 1, 'the read made the first escape');
  t.equal(pool.allocate(n), other, 'an aligned view is the pool\'s own: recycled, not escaped');
  tensor.dispose();
});

t.test('a foreign view over an aligned pool array escapes', async (t) => {
  const pool = new BufferPool();
  pool.alignWith(() => 16);
  const array = pool.allocate(n);
  const source = tf.tensor(array, [n]);
  const view = new Float32Array(array.buffer, array.byteOffset, n);
  const alias = tf.tensor(view, [n]);
  t.equal(pool.stats().escaped, 1, 'same buffer, not the array the pool issued');
  source.dispose();
  alias.dispose();
  t.not(pool.allocate(n), array, 'never handed out again');
});

t.test('on the native path every pool array starts on a 64-byte boundary', { skip: nativeUnavailable }, async (t) => {
  const addon = requireNativeAddon();
  const pool = new BufferPool();
  t.ok([1, 2, 3].some(() => addon.byteAlignment(new Float32Array(n)) !== 0), 'plain typed arrays are not (V8 offsets them by 16 bytes)');
  pool.alignWith((a) => addon.byteAlignment(a));
  for (const length of [n, n + 1, 3 * n + 5]) t.equal(addon.byteAlignment(pool.allocate(length)), 0, `${length} elements`);
  t.equal(addon.byteAlignment(pool.alignedArray(5)), 0, 'alignedArray too');
});
