import t from 'tap';
import { channelStats, keepTrainingImages, splitValidation, subsetDataset } from '../../src/data/split';
import { isShared } from '../../src/data/shared-memory';
import { randomDataset } from '../helpers/datasets';

t.test('validation split: deterministic by seed, stratified, disjoint, order kept', async (t) => {
  const data = randomDataset(500, { height: 2, width: 2, channels: 3 }, 5, 3);
  const a = splitValidation(data, { seed: 7 });
  const b = splitValidation(data, { seed: 7 });
  const c = splitValidation(data, { seed: 8 });
  t.equal(a.validation.count + a.train.count, 500);
  t.same(Buffer.from(a.validation.images), Buffer.from(b.validation.images), 'same seed, same split');
  t.not(Buffer.from(a.validation.images).equals(Buffer.from(c.validation.images)), true, 'another seed, another split');
  t.ok(isShared(a.train.images) && isShared(a.validation.images));

  // Recover which original images went where (the random images are distinct).
  const key = (ds: typeof data, i: number) => Buffer.from(ds.images.subarray(i * 12, i * 12 + 12)).toString('hex');
  const where = new Map<string, number>();
  for (let i = 0; i < data.count; i++) where.set(key(data, i), i);
  t.equal(where.size, 500, 'fixture images are distinct');
  const origins = (ds: typeof data) => Array.from({ length: ds.count }, (_, i) => where.get(key(ds, i))!);
  const trainIdx = origins(a.train);
  const valIdx = origins(a.validation);
  t.same([...trainIdx, ...valIdx].sort((x, y) => x - y), Array.from({ length: 500 }, (_, i) => i), 'a partition');
  t.same(trainIdx, [...trainIdx].sort((x, y) => x - y), 'training part keeps the original order');
  trainIdx.forEach((o, i) => a.train.labels[i] !== data.labels[o] && t.fail(`label of train ${i}`));
  const perClass = (labels: Int32Array) => labels.reduce((acc, l) => (acc[l]++, acc), new Array(5).fill(0));
  const all = perClass(data.labels);
  t.same(perClass(a.validation.labels), all.map((n: number) => Math.round(n * 0.1)), 'stratified: 10% of every class');

  const flat = splitValidation(data, { seed: 7, fraction: 0.2, stratified: false });
  t.equal(flat.validation.count, 100);
  t.equal(splitValidation(data, { seed: 1, fraction: 0 }).validation.count, 0);
  t.throws(() => splitValidation(data, { seed: 1, fraction: 1 }), { message: /fraction must be in \[0, 1\), got 1/ });
  t.throws(() => subsetDataset(data, [3, 500]), { message: /image index 500 out of range \[0, 500\)/ });
});

t.test('kept training images: stratified shares summing to the count, by seed, in the original order', async (t) => {
  const data = randomDataset(503, { height: 2, width: 2, channels: 3 }, 7, 11);
  const key = (ds: typeof data, i: number) => Buffer.from(ds.images.subarray(i * 12, i * 12 + 12)).toString('hex');
  const where = new Map<string, number>();
  for (let i = 0; i < data.count; i++) where.set(key(data, i), i);
  const origins = (ds: typeof data) => Array.from({ length: ds.count }, (_, i) => where.get(key(ds, i))!);
  const perClass = (labels: Int32Array) => labels.reduce((acc, l) => (acc[l]++, acc), new Array(7).fill(0));

  const a = keepTrainingImages(data, 100, 3);
  t.equal(a.count, 100);
  const shares = perClass(data.labels).map((n: number) => (100 * n) / 503);
  perClass(a.labels).forEach((n: number, c: number) => t.ok(n === Math.floor(shares[c]) || n === Math.ceil(shares[c]), `class ${c}: ${n} of share ${shares[c].toFixed(2)}`));
  const kept = origins(a);
  t.same(kept, [...kept].sort((x, y) => x - y), 'original order kept');
  kept.forEach((o, i) => a.labels[i] !== data.labels[o] && t.fail(`label of kept image ${i}`));
  t.same(origins(keepTrainingImages(data, 100, 3)), kept, 'same seed, same images');
  t.not(origins(keepTrainingImages(data, 100, 4)).join(), kept.join(), 'another seed, other images');
  t.equal(keepTrainingImages(data, 503, 3), data, 'all of them: the data set itself');
  t.throws(() => keepTrainingImages(data, 504, 3), { message: /holds 503 training images; cannot keep 504/ });
  t.throws(() => keepTrainingImages(data, 0, 3), { message: /positive integer, got 0/ });
});

t.test('channel statistics equal a plain two-pass computation', async (t) => {
  const data = randomDataset(37, { height: 3, width: 5, channels: 3 }, 2, 4);
  const stats = channelStats(data);
  for (let c = 0; c < 3; c++) {
    const values: number[] = [];
    for (let i = c; i < data.images.length; i += 3) values.push(data.images[i] / 255);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    t.ok(Math.abs(stats.mean[c] - mean) < 1e-12, `mean[${c}] ${stats.mean[c]} ≈ ${mean}`);
    t.ok(Math.abs(stats.std[c] - std) < 1e-12, `std[${c}] ${stats.std[c]} ≈ ${std}`);
  }
  const flat = { ...data, images: new Uint8Array(data.images.length).fill(51) };
  t.same(channelStats(flat), { mean: [0.2, 0.2, 0.2], std: [0, 0, 0] });
  t.throws(() => channelStats({ ...data, count: 0, images: new Uint8Array(0) }), { message: /empty data set/ });
});
