import type { ChannelStats } from '../data/types';
import type { Rng } from '../util/rng';

/** The part of an ImageDataset the augmentation reads: uint8 NHWC pixels and their shape. */
export interface ImageBlock {
  readonly images: Uint8Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

export interface AugmentParams {
  /** Zero padding on each side before the random crop back to the original size. Default 4. */
  readonly pad: number;
  /** Random horizontal flip with probability ½. Default true. */
  readonly flip: boolean;
}

export const STANDARD_AUGMENT: AugmentParams = { pad: 4, flip: true };

/**
 * The training augmentation of a batch: each image at `indices` is zero-padded by `pad`, cropped back to
 * height × width at a random offset, flipped left-right with probability ½, then normalised per channel
 * ((v / 255 − mean) / std; padding is pixel value 0, so it becomes −mean / std). Output: float32 NHWC.
 *
 * Randomness, per image in batch order: offset row = rng.nextInt(2·pad + 1), offset column =
 * rng.nextInt(2·pad + 1), then (only when `flip`) flipped = rng.nextFloat() < 0.5. Give it
 * Rng.derive(seed, 'augment', epoch, batchIndex) and the result depends on nothing else.
 */
export function augmentBatch(
  block: ImageBlock,
  indices: ArrayLike<number>,
  stats: ChannelStats,
  rng: Rng,
  params: AugmentParams = STANDARD_AUGMENT,
  out?: Float32Array,
): Float32Array {
  const { height: H, width: W, channels: C } = block;
  const pad = params.pad;
  if (!(Number.isInteger(pad) && pad >= 0)) throw new Error(`augment pad must be a non-negative integer, got ${pad}`);
  const result = outputFor(block, indices, out);
  const lut = normalizationTable(stats, C);
  const images = block.images;
  const rowLen = W * C;
  const imageLen = H * rowLen;
  for (let b = 0; b < indices.length; b++) {
    const src = checkedIndex(block, indices[b]) * imageLen;
    const offsetY = rng.nextInt(2 * pad + 1) - pad;
    const offsetX = rng.nextInt(2 * pad + 1) - pad;
    const flipped = params.flip && rng.nextFloat() < 0.5;
    // Output columns whose source column sx = (flipped ? W − 1 − x : x) + offsetX lies inside the image;
    // the rest is padding. Computing the range once keeps the per-pixel loop free of bounds checks.
    const xFrom = Math.max(0, flipped ? offsetX : -offsetX);
    const xTo = Math.min(W, flipped ? W + offsetX : W - offsetX);
    const step = flipped ? -C : C;
    for (let y = 0; y < H; y++) {
      const sy = y + offsetY;
      const rowStart = b * imageLen + y * rowLen;
      if (sy < 0 || sy >= H || xFrom >= xTo) {
        fillPadding(result, rowStart, rowStart + rowLen, lut, C);
        continue;
      }
      fillPadding(result, rowStart, rowStart + xFrom * C, lut, C);
      fillPadding(result, rowStart + xTo * C, rowStart + rowLen, lut, C);
      let s = src + sy * rowLen + ((flipped ? W - 1 - xFrom : xFrom) + offsetX) * C;
      const end = rowStart + xTo * C;
      if (C === 3) {
        for (let d = rowStart + xFrom * 3; d < end; d += 3, s += step) {
          result[d] = lut[images[s] * 3];
          result[d + 1] = lut[images[s + 1] * 3 + 1];
          result[d + 2] = lut[images[s + 2] * 3 + 2];
        }
      } else {
        for (let d = rowStart + xFrom * C; d < end; d += C, s += step) {
          for (let c = 0; c < C; c++) result[d + c] = lut[images[s + c] * C + c];
        }
      }
    }
  }
  return result;
}

/** Normalised zero pixels (lut[0·C + c]) over result[from, to), a whole number of pixels. */
function fillPadding(result: Float32Array, from: number, to: number, lut: Float32Array, C: number): void {
  for (let d = from; d < to; d += C) for (let c = 0; c < C; c++) result[d + c] = lut[c];
}

/** Evaluation path: the images at `indices`, normalised only (no padding, crop or flip). */
export function normalizeBatch(
  block: ImageBlock,
  indices: ArrayLike<number>,
  stats: ChannelStats,
  out?: Float32Array,
): Float32Array {
  const result = outputFor(block, indices, out);
  const C = block.channels;
  const lut = normalizationTable(stats, C);
  const imageLen = block.height * block.width * C;
  const images = block.images;
  for (let b = 0; b < indices.length; b++) {
    const src = checkedIndex(block, indices[b]) * imageLen;
    const dst = b * imageLen;
    for (let i = 0; i < imageLen; i += C) {
      for (let c = 0; c < C; c++) result[dst + i + c] = lut[images[src + i + c] * C + c];
    }
  }
  return result;
}

/** lut[v·C + c] = float32((v / 255 − mean[c]) / std[c]) for every byte value v and channel c. */
export function normalizationTable(stats: ChannelStats, channels: number): Float32Array {
  if (stats.mean.length !== channels || stats.std.length !== channels) {
    throw new Error(
      `channel stats have ${stats.mean.length} means and ${stats.std.length} stds for ${channels}-channel images`,
    );
  }
  stats.std.forEach((s, c) => {
    if (!(s > 0)) throw new Error(`channel stats: std[${c}] must be > 0, got ${s}`);
  });
  const lut = new Float32Array(256 * channels);
  for (let v = 0; v < 256; v++) {
    for (let c = 0; c < channels; c++) lut[v * channels + c] = (v / 255 - stats.mean[c]) / stats.std[c];
  }
  return lut;
}

function outputFor(block: ImageBlock, indices: ArrayLike<number>, out: Float32Array | undefined): Float32Array {
  const length = indices.length * block.height * block.width * block.channels;
  if (out && out.length !== length) throw new Error(`output buffer holds ${out.length} floats, batch needs ${length}`);
  return out ?? new Float32Array(length);
}

function checkedIndex(block: ImageBlock, index: number): number {
  if (!(Number.isInteger(index) && index >= 0 && index < block.count)) {
    throw new Error(`image index ${index} out of range [0, ${block.count})`);
  }
  return index;
}
