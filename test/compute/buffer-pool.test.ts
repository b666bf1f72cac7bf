import t from 'tap';
import { readFileSync } from 'node:fs';
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

t.test('arrays from HUGE_PAGE_MIN_BYTES on come from the huge-page source, and are recycled like any other', async (t) => {
  const pool = new BufferPool();
  const asked: number[] = [];
  pool.alignWith(() => 16);
  pool.hugePagesFrom((bytes) => {
    asked.push(bytes);
    return new ArrayBuffer(bytes);
  });
  const big = BufferPool.HUGE_PAGE_MIN_BYTES / 4;
  const small = pool.allocate(big - 1);
  t.equal(small.byteOffset, 48, 'below the threshold: an aligned view of an ordinary buffer');
  const array = pool.allocate(big);
  t.same(asked, [4 * big], 'at the threshold: one buffer of exactly its size from the source');
  t.equal(array.byteOffset, 0);
  t.equal(array.buffer.byteLength, 4 * big);
  t.equal(pool.alignedArray(big + 5).length, big + 5, 'alignedArray takes it too');
  t.same(asked, [4 * big, 4 * (big + 5)]);
  tf.tensor(array, [big]).dispose();
  t.equal(pool.allocate(big), array, 'recycled, not taken again');
  t.equal(asked.length, 2);
});

t.test('a huge-page source that throws is dropped after one warning', async (t) => {
  const pool = new BufferPool();
  let calls = 0;
  pool.hugePagesFrom(() => {
    calls++;
    throw new Error('external buffers are not allowed');
  });
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (line: string) => warnings.push(line);
  try {
    const big = BufferPool.HUGE_PAGE_MIN_BYTES / 4;
    t.equal(pool.allocate(big).length, big);
    t.equal(pool.allocate(big).length, big);
  } finally {
    console.warn = warn;
  }
  t.equal(calls, 1, 'not asked again');
  t.equal(warnings.length, 1);
  t.match(warnings[0], /huge-page buffers unavailable.*external buffers are not allowed/);
});

/** This process's memory in transparent huge pages, in bytes (Linux), or undefined where unknown. */
function anonHugePages(): number | undefined {
  try {
    const line = readFileSync('/proc/self/smaps_rollup', 'utf8').split('\n').find((l) => l.startsWith('AnonHugePages:'));
    return line ? Number(line.split(/\s+/)[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the kernel gives huge pages to memory that asks for them (THP 'always' or 'madvise'). */
function hugePagesOnRequest(): boolean {
  try {
    return /\[(always|madvise)\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
  } catch {
    return false;
  }
}

t.test('native hugePageBuffer: zero-filled, of the size asked, aligned, in huge pages where the kernel allows', { skip: nativeUnavailable }, async (t) => {
  const addon = requireNativeAddon();
  const bytes = (64 << 20) + 12;
  const buffer = addon.hugePageBuffer(bytes);
  t.equal(buffer.byteLength, bytes);
  const array = new Float32Array(buffer);
  t.equal(addon.byteAlignment(array), 0, 'starts on a 64-byte boundary');
  let nonzero = 0;
  for (let i = 0; i < array.length; i += 1021) if (array[i] !== 0) nonzero++;
  t.equal(nonzero, 0, 'zero-filled');
  const before = anonHugePages();
  array.fill(1);
  t.equal(array[array.length - 1], 1, 'writable to the end');
  const after = anonHugePages();
  if (before === undefined || after === undefined || !hugePagesOnRequest()) {
    t.comment('transparent huge pages are off or not reported here: backing not checked');
  } else {
    t.ok(after - before >= 32 << 20, `touching 64 MiB added ${((after - before) / 2 ** 20).toFixed(0)} MiB of huge pages (at least 32 expected)`);
  }
  t.throws(() => addon.hugePageBuffer(0), /hugePageBuffer: bytes must be positive, got 0/);
  t.throws(() => addon.hugePageBuffer(-5), /got -5/);
});

t.test('native hugePageBuffer: buffers no longer referenced are given back', { skip: nativeUnavailable }, async (t) => {
  const addon = requireNativeAddon();
  const rssBefore = process.memoryUsage().rss;
  // 3 GiB in all, touched; if collected buffers were never unmapped the process would hold all of it.
  for (let i = 0; i < 48; i++) {
    new Float32Array(addon.hugePageBuffer(64 << 20)).fill(i);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const grown = process.memoryUsage().rss - rssBefore;
  t.ok(grown < 1.5 * 2 ** 30, `resident memory grew by ${(grown / 2 ** 20).toFixed(0)} MiB (under 1.5 GiB expected)`);
});
