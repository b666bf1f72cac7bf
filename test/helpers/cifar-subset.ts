import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { Batch } from '../../src/stream/batch';
import { sharedCifar10Dir } from '../../src/util/paths';
import { Rng } from '../../src/util/rng';

/** CIFAR-10 training-set channel statistics (the usual normalisation constants). */
const MEAN = [0.4914, 0.4822, 0.4465];
const STD = [0.247, 0.2435, 0.2616];

export interface CifarSubset {
  readonly count: number;
  readonly size: number;
  /** count × size × size × 3, normalised, NHWC. */
  readonly x: Float32Array;
  readonly labels: Int32Array;
}

export const cifarAvailable = (): boolean => fs.existsSync(path.join(sharedCifar10Dir, 'train'));

/**
 * A small real subset for tests: the first `perClass` JPEGs (by file name) of every class of the shared
 * CIFAR-10 training folder, decoded with sharp, resized to size × size, normalised, in a seeded order.
 */
export async function loadCifarSubset(perClass: number, size: number, seed: number): Promise<CifarSubset> {
  const root = path.join(sharedCifar10Dir, 'train');
  const classes = fs.readdirSync(root).filter((d) => fs.statSync(path.join(root, d)).isDirectory()).sort();
  const files: { file: string; label: number }[] = [];
  classes.forEach((name, label) => {
    const names = fs.readdirSync(path.join(root, name)).filter((f) => f.endsWith('.jpg')).sort().slice(0, perClass);
    if (names.length < perClass) throw new Error(`${path.join(root, name)} has only ${names.length} images, need ${perClass}`);
    for (const f of names) files.push({ file: path.join(root, name, f), label });
  });
  new Rng(seed).shuffle(files);
  const per = size * size * 3;
  const x = new Float32Array(files.length * per);
  const labels = new Int32Array(files.length);
  await Promise.all(files.map(async ({ file, label }, n) => {
    const pixels = await sharp(file).removeAlpha().resize(size, size).raw().toBuffer();
    if (pixels.length !== per) throw new Error(`${file}: decoded ${pixels.length} bytes, expected ${per}`);
    for (let i = 0; i < per; i++) x[n * per + i] = (pixels[i] / 255 - MEAN[i % 3]) / STD[i % 3];
    labels[n] = label;
  }));
  return { count: files.length, size, x, labels };
}

/** The subset as `epochs` epochs of equal batches (the same order every epoch; the tail is dropped). */
export function subsetBatches(subset: CifarSubset, batchSize: number, epochs: number): Batch[] {
  const per = subset.size * subset.size * 3;
  const steps = Math.floor(subset.count / batchSize);
  const out: Batch[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let index = 0; index < steps; index++) {
      const from = index * batchSize;
      out.push({
        epoch, index, size: batchSize, height: subset.size, width: subset.size, channels: 3,
        x: subset.x.subarray(from * per, (from + batchSize) * per),
        labels: subset.labels.subarray(from, from + batchSize),
      });
    }
  }
  return out;
}
