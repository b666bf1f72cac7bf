import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { Rng } from '../../src/util/rng';
import type { NamedArrays } from '../../src/util/named-arrays';
import {
  decodeSparseModel,
  encodeSparseModel,
  readSparseModelFile,
  sparseModelSize,
  writeSparseModelFile,
} from '../../src/sinks/sparse-model-file';

/** Random weights with only a `density` fraction non-zero, as a trained sparse model has. */
function sparseWeights(rng: Rng, shape: number[], density: number): Float32Array {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) if (rng.nextFloat() < density) values[i] = rng.nextNormal();
  return values;
}

function bits(values: Float32Array): number[] {
  return Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));
}

t.test('round trip is bit-exact, including -0, NaN payloads and empty tensors', async (t) => {
  const rng = new Rng(3);
  const special = new Float32Array(11);
  new Uint32Array(special.buffer).set([0x80000000, 0x7fc00001, 0xffa00000, 0x00000001, 0x7f800000]);
  const arrays: NamedArrays = {
    'conv1/kernel': { shape: [3, 3, 3, 16], values: sparseWeights(rng, [3, 3, 3, 16], 0.1) },
    'fc/kernel': { shape: [13, 7], values: sparseWeights(rng, [13, 7], 0.5) },
    'fc/bias': { shape: [7], values: Float32Array.from([1, 0, -2, 0, 3, 0, 0]) },
    special: { shape: [11], values: special },
    empty: { shape: [0, 4], values: new Float32Array(0) },
  };
  const metadata = { method: 'cigl', temperature: 1.5, layers: { 'conv1/kernel': 0.1 } };
  const file = path.join(t.testdir(), 'weights.cigl-sparse');
  const size = writeSparseModelFile(file, { arrays, metadata });
  t.equal(size, fs.statSync(file).size);
  const back = readSparseModelFile(file);
  t.same(back.metadata, metadata);
  t.same(Object.keys(back.arrays), Object.keys(arrays));
  for (const [name, a] of Object.entries(arrays)) {
    t.same(back.arrays[name].shape, a.shape, `${name} shape`);
    t.same(bits(back.arrays[name].values), bits(a.values), `${name} bit-exact`);
  }
});

t.test('size is reported against dense float32 and is small for sparse weights', async (t) => {
  const rng = new Rng(5);
  const n = 64 * 64;
  const file = path.join(t.testdir(), 'w.cigl-sparse');
  writeSparseModelFile(file, { arrays: { w: { shape: [64, 64], values: sparseWeights(rng, [64, 64], 0.1) } }, metadata: {} });
  const report = sparseModelSize(file);
  t.equal(report.parameters, n);
  t.equal(report.denseBytes, n * 4);
  t.equal(report.fileBytes, fs.statSync(file).size);
  t.equal(report.nonZeros, bits(readSparseModelFile(file).arrays.w.values).filter((b) => b !== 0).length);
  // Bitmask (n/8 bytes) + 4 bytes per non-zero + a small header: about 0.125 + 0.1 of dense.
  const expected = n / 8 + report.nonZeros * 4;
  t.ok(report.fileBytes >= expected && report.fileBytes < expected + 512, `${report.fileBytes} bytes ≈ mask + values (${expected})`);
  t.equal(report.ratio, report.fileBytes / report.denseBytes);
  t.ok(report.ratio < 0.3, `ratio ${report.ratio.toFixed(3)} at 10% density`);
});

t.test('corruption and truncation are detected with a clear error naming the file', async (t) => {
  const rng = new Rng(9);
  const good = encodeSparseModel({ arrays: { w: { shape: [100], values: sparseWeights(rng, [100], 0.3) } }, metadata: { a: 1 } });
  t.ok(decodeSparseModel(good, 'good.bin').arrays.w);

  const flipped = Buffer.from(good);
  flipped[flipped.length - 60] ^= 0x10;
  t.throws(() => decodeSparseModel(flipped, 'model/w.cigl-sparse'), /model\/w\.cigl-sparse: checksum mismatch/);
  t.throws(() => decodeSparseModel(good.subarray(0, good.length - 9), 'cut.bin'), /cut\.bin: checksum mismatch/);
  t.throws(() => decodeSparseModel(good.subarray(0, 20), 'tiny.bin'), /tiny\.bin: too short/);
  const wrongMagic = Buffer.from(good);
  wrongMagic.write('NOTCIGL!', 0, 'latin1');
  t.throws(() => decodeSparseModel(wrongMagic, 'other.bin'), /other\.bin: not a CIGLSPRS file/);
  const dir = t.testdir({ 'x.cigl-sparse': Buffer.from(good.subarray(0, good.length - 1)) });
  t.throws(() => readSparseModelFile(path.join(dir, 'x.cigl-sparse')), /x\.cigl-sparse: checksum mismatch/);
});

t.test('bad tensors are refused when writing', async (t) => {
  t.throws(
    () => encodeSparseModel({ arrays: { w: { shape: [2, 3], values: new Float32Array(5) } }, metadata: {} }),
    /tensor "w" has shape \[2, 3\] but 5 values/,
  );
});
