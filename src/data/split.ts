import { Rng } from '../util/rng';
import { sharedBytes } from './shared-memory';
import type { ChannelStats, ImageDataset } from './types';

export interface ValidationSplitOptions {
  /** Fraction of the training set held out, in [0, 1). Default 0.1. */
  readonly fraction?: number;
  /** Which images are held out depends on this seed only (and the data). */
  readonly seed: number;
  /**
   * Default true: hold out round(fraction × n_c) images of every class c, so the class balance of both
   * parts follows the whole; false: round(fraction × N) images drawn from all classes together.
   */
  readonly stratified?: boolean;
}

export interface ValidationSplit {
  readonly train: ImageDataset;
  readonly validation: ImageDataset;
}

/**
 * Holds a validation part out of a training set, deterministically by seed. Both parts keep the
 * original image order, and their pixels are fresh shared-memory copies.
 */
export function splitValidation(dataset: ImageDataset, options: ValidationSplitOptions): ValidationSplit {
  const fraction = options.fraction ?? 0.1;
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`validation fraction must be in [0, 1), got ${fraction}`);
  if (!Number.isInteger(options.seed)) throw new Error(`validation split seed must be an integer, got ${options.seed}`);
  const rng = Rng.derive(options.seed, 'validation-split');
  const held = new Uint8Array(dataset.count);
  const groups = options.stratified === false ? [allIndices(dataset.count)] : indicesByClass(dataset);
  for (const group of groups) {
    rng.shuffle(group);
    const take = Math.round(fraction * group.length);
    for (let i = 0; i < take; i++) held[group[i]] = 1;
  }
  const trainIdx: number[] = [];
  const valIdx: number[] = [];
  for (let i = 0; i < dataset.count; i++) (held[i] ? valIdx : trainIdx).push(i);
  return {
    train: subsetDataset(dataset, trainIdx, `${dataset.source} (training part)`),
    validation: subsetDataset(dataset, valIdx, `${dataset.source} (validation part)`),
  };
}

/**
 * A run's two parts of the training split: the validation hold-out, then (when `trainImages` is given)
 * the kept training images. One place, so that training and `cigl eval --split train` see the same images.
 */
export function runTrainingParts(dataset: ImageDataset, options: { validationFraction: number; trainImages?: number; seed: number }): ValidationSplit {
  const parts = splitValidation(dataset, { fraction: options.validationFraction, seed: options.seed });
  const kept = options.trainImages;
  if (kept === undefined) return parts;
  if (kept > parts.train.count) {
    throw new Error(`data.trainImages ${kept} is more than the ${parts.train.count} training images of ${dataset.source} (after holding out ${parts.validation.count} for validation)`);
  }
  return { train: keepTrainingImages(parts.train, kept, options.seed), validation: parts.validation };
}

/**
 * Keeps `count` images of a training part, stratified (every class keeps its share, the remainders going
 * to the classes with the largest fractional parts) and chosen by `seed`, in the original image order.
 * Studies use it to reach the over-fit regime with models small enough for their budget.
 */
export function keepTrainingImages(dataset: ImageDataset, count: number, seed: number): ImageDataset {
  if (!Number.isInteger(count) || count < 1) throw new Error(`training image count must be a positive integer, got ${count}`);
  if (count > dataset.count) throw new Error(`${dataset.source} holds ${dataset.count} training images; cannot keep ${count}`);
  if (count === dataset.count) return dataset;
  const groups = indicesByClass(dataset);
  const shares = groups.map((g) => (count * g.length) / dataset.count);
  const take = shares.map(Math.floor);
  const byRemainder = shares.map((s, c) => ({ c, r: s - Math.floor(s) })).sort((a, b) => b.r - a.r || a.c - b.c);
  for (let i = 0, left = count - take.reduce((a, b) => a + b, 0); i < left; i++) take[byRemainder[i].c]++;
  const rng = Rng.derive(seed, 'training-images');
  const kept = new Uint8Array(dataset.count);
  groups.forEach((group, c) => {
    rng.shuffle(group);
    for (let i = 0; i < take[c]; i++) kept[group[i]] = 1;
  });
  const indices: number[] = [];
  for (let i = 0; i < dataset.count; i++) if (kept[i]) indices.push(i);
  return subsetDataset(dataset, indices, `${dataset.source} (${count} images kept)`);
}

/** The images at `indices`, in that order, as a new data set with shared-memory pixels. */
export function subsetDataset(dataset: ImageDataset, indices: ArrayLike<number>, source = dataset.source): ImageDataset {
  const imageBytes = dataset.height * dataset.width * dataset.channels;
  const images = sharedBytes(indices.length * imageBytes);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const from = indices[i];
    if (!(from >= 0 && from < dataset.count)) throw new Error(`${dataset.source}: image index ${from} out of range [0, ${dataset.count})`);
    images.set(dataset.images.subarray(from * imageBytes, (from + 1) * imageBytes), i * imageBytes);
    labels[i] = dataset.labels[from];
  }
  return { ...dataset, source, count: indices.length, images, labels };
}

/**
 * Per-channel mean and (population) standard deviation of the pixels in [0, 1] units. Pass the
 * training part only, so that validation and test data never leak into the normalisation.
 */
export function channelStats(dataset: ImageDataset): ChannelStats {
  const c = dataset.channels;
  if (dataset.count === 0) throw new Error(`${dataset.source}: cannot compute channel statistics of an empty data set`);
  // A histogram per channel: one pass of increments, then exact sums from 256 bins.
  const hist = new Float64Array(c * 256);
  const pixels = dataset.images;
  for (let i = 0; i < pixels.length; i += c) {
    for (let ch = 0; ch < c; ch++) hist[ch * 256 + pixels[i + ch]]++;
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let n = 0;
    let sum = 0;
    for (let v = 0; v < 256; v++) {
      n += hist[ch * 256 + v];
      sum += hist[ch * 256 + v] * (v / 255);
    }
    const m = sum / n;
    let sq = 0;
    for (let v = 0; v < 256; v++) sq += hist[ch * 256 + v] * (v / 255 - m) ** 2;
    mean.push(m);
    std.push(Math.sqrt(sq / n));
  }
  return { mean, std };
}

function allIndices(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function indicesByClass(dataset: ImageDataset): number[][] {
  const groups: number[][] = dataset.classNames.map(() => []);
  for (let i = 0; i < dataset.count; i++) groups[dataset.labels[i]].push(i);
  return groups;
}
