import t from 'tap';
import { augmentBatch, normalizeBatch, normalizationTable, type ImageBlock } from '../../src/augment/augment';
import { runAugmentTask } from '../../src/augment/task';
import type { ChannelStats } from '../../src/data/types';
import { Rng } from '../../src/util/rng';
import { randomDataset } from '../helpers/datasets';

/**
 * The obvious way, one step at a time: build the zero-padded image, cut the crop out of it, mirror the
 * rows, normalise each value. Same documented draw order: row offset, column offset, flip.
 */
function referenceAugment(block: ImageBlock, indices: number[], stats: ChannelStats, rng: Rng, pad: number, flip: boolean): Float32Array {
  const { height: H, width: W, channels: C } = block;
  const out: number[] = [];
  for (const n of indices) {
    const top = rng.nextInt(2 * pad + 1);
    const left = rng.nextInt(2 * pad + 1);
    const mirrored = flip && rng.nextFloat() < 0.5;
    const padded: number[][][] = [];
    for (let y = 0; y < H + 2 * pad; y++) {
      padded.push([]);
      for (let x = 0; x < W + 2 * pad; x++) {
        const inside = y >= pad && y < H + pad && x >= pad && x < W + pad;
        const pixel: number[] = [];
        for (let c = 0; c < C; c++) pixel.push(inside ? block.images[((n * H + (y - pad)) * W + (x - pad)) * C + c] : 0);
        padded[y].push(pixel);
      }
    }
    const crop = padded.slice(top, top + H).map((row) => row.slice(left, left + W));
    const image = mirrored ? crop.map((row) => [...row].reverse()) : crop;
    for (const row of image) for (const pixel of row) pixel.forEach((v, c) => out.push((v / 255 - stats.mean[c]) / stats.std[c]));
  }
  return Float32Array.from(out);
}

function firstDifference(a: Float32Array, b: Float32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return 'none';
}

const stats3: ChannelStats = { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] };

t.test('augmentation equals the plain reference pixel for pixel', async (t) => {
  const data = randomDataset(40, { height: 32, width: 32, channels: 3 }, 10, 11);
  const indices = [5, 0, 39, 5, 17, 22, 8, 1, 30, 12, 2, 3];
  for (const seed of [1, 2, 3, 4, 5]) {
    const fast = augmentBatch(data, indices, stats3, new Rng(seed), { pad: 4, flip: true });
    const slow = referenceAugment(data, indices, stats3, new Rng(seed), 4, true);
    t.equal(firstDifference(fast, slow), 'none', `seed ${seed}: 32×32×3, pad 4, flip`);
  }
  const odd = randomDataset(6, { height: 5, width: 7, channels: 2 }, 3, 12);
  const stats2: ChannelStats = { mean: [0.3, 0.7], std: [0.2, 0.1] };
  for (const [pad, flip] of [[3, true], [0, true], [9, false]] as const) {
    const fast = augmentBatch(odd, [0, 1, 2, 3, 4, 5, 5, 4], stats2, new Rng(9), { pad, flip });
    const slow = referenceAugment(odd, [0, 1, 2, 3, 4, 5, 5, 4], stats2, new Rng(9), pad, flip);
    t.equal(firstDifference(fast, slow), 'none', `5×7×2, pad ${pad}, flip ${flip}`);
  }
});

t.test('evaluation path normalises only; equals augmentation without padding or flip', async (t) => {
  const data = randomDataset(10, { height: 8, width: 8, channels: 3 }, 2, 13);
  const indices = [9, 3, 3, 0];
  const normalized = normalizeBatch(data, indices, stats3);
  t.equal(firstDifference(normalized, referenceAugment(data, indices, stats3, new Rng(1), 0, false)), 'none');
  t.equal(firstDifference(normalized, augmentBatch(data, indices, stats3, new Rng(1), { pad: 0, flip: false })), 'none');
  const out = new Float32Array(normalized.length);
  t.equal(normalizeBatch(data, indices, stats3, out), out, 'writes into a given buffer');
});

t.test('random draws: every offset and both flips occur; same stream, same batch', async (t) => {
  const data = randomDataset(1, { height: 4, width: 4, channels: 1 }, 1, 14);
  // A single bright pixel at (0, 0) shows where each crop put it.
  const dot = { ...data, images: Uint8Array.from([255, ...new Array(15).fill(0)]) };
  const rng = new Rng(15);
  const seen = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const x = augmentBatch(dot, [0], { mean: [0], std: [1] }, rng, { pad: 1, flip: true });
    seen.add(Array.from(x).map((v) => (v === 1 ? 1 : 0)).join(''));
  }
  // 3 × 3 offsets × 2 flips; offsets that push the dot out of the crop all look the same (blank).
  t.equal(seen.size, 9, `distinct outcomes: ${seen.size}`);
  const batch = (index: number) =>
    runAugmentTask(data, { seed: 3, epoch: 1, index, indices: Int32Array.of(0, 0, 0), stats: { mean: [0.5], std: [0.5] }, augment: { pad: 2, flip: true } });
  t.same(batch(4), batch(4), 'same (seed, epoch, index), same pixels');
  t.not(firstDifference(batch(4), batch(5)), 'none', 'another batch index, other draws');
  const viaDerive = augmentBatch(data, [0, 0, 0], { mean: [0.5], std: [0.5] }, Rng.derive(3, 'augment', 1, 4), { pad: 2, flip: true });
  t.equal(firstDifference(batch(4), viaDerive), 'none', 'randomness is Rng.derive(seed, "augment", epoch, index)');
});

t.test('bad parameters are clear errors', async (t) => {
  const data = randomDataset(3, { height: 4, width: 4, channels: 3 }, 1, 16);
  t.throws(() => augmentBatch(data, [0, 3], stats3, new Rng(1)), { message: /image index 3 out of range \[0, 3\)/ });
  t.throws(() => normalizeBatch(data, [-1], stats3), { message: /image index -1 out of range/ });
  t.throws(() => normalizationTable({ mean: [0.5], std: [0.5] }, 3), { message: /1 means and 1 stds for 3-channel images/ });
  t.throws(() => normalizationTable({ mean: [0, 0, 0], std: [1, 0, 1] }, 3), { message: /std\[1\] must be > 0, got 0/ });
  t.throws(() => augmentBatch(data, [0], stats3, new Rng(1), { pad: -1, flip: true }), { message: /pad must be a non-negative integer, got -1/ });
  t.throws(() => normalizeBatch(data, [0], stats3, new Float32Array(5)), { message: /output buffer holds 5 floats, batch needs 48/ });
});
