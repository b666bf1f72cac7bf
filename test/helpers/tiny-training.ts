import * as tf from '@tensorflow/tfjs';
import { stockOps } from '../../src/compute/stock-ops';
import { convBn, dense } from '../../src/models/architecture';
import { buildModel } from '../../src/models/build';
import type { Model } from '../../src/models/model';
import type { Batch } from '../../src/stream/batch';
import type { TrainerConfig } from '../../src/train/trainer';
import { Rng } from '../../src/util/rng';

/**
 * Small models and data for training tests on the tfjs 'cpu' backend, whose convolution gradients are
 * slow: 8×8 inputs, a few channels. Two conv layers, one maskable dense layer and the dense classifier,
 * so every kind of parameter (conv, dense, bias, BatchNorm) is exercised.
 */
export function tinyConvModel(seed: number, inputShape: readonly number[] = [8, 8, 3], numClasses = 4, width = 4): Model {
  return buildModel({
    name: 'tiny-cnn', inputShape, numClasses,
    nodes: [
      convBn('c1', width, 3), { op: 'maxPool2' }, convBn('c2', 2 * width, 3), { op: 'maxPool2' }, { op: 'flatten' },
      dense('fc1', 16, true), dense('fc', numClasses, false, false),
    ],
  }, seed);
}

export async function useCpuBackend(): Promise<void> {
  await tf.setBackend('cpu');
}

/**
 * Deterministic batches with a learnable signal: each class shifts its own channel/row pattern.
 * `stepsPerEpoch` batches per epoch, `epochs` epochs, the same images every epoch.
 */
export function syntheticBatches(opts: { epochs: number; stepsPerEpoch: number; size: number; shape?: readonly number[]; numClasses?: number; seed?: number }): Batch[] {
  const [height, width, channels] = opts.shape ?? [8, 8, 3];
  const classes = opts.numClasses ?? 4;
  const per = height * width * channels;
  const images: { x: Float32Array; labels: Int32Array }[] = [];
  for (let index = 0; index < opts.stepsPerEpoch; index++) {
    const rng = Rng.derive(opts.seed ?? 0, 'synthetic', index);
    const x = new Float32Array(opts.size * per);
    const labels = new Int32Array(opts.size);
    for (let n = 0; n < opts.size; n++) {
      const label = rng.nextInt(classes);
      labels[n] = label;
      for (let i = 0; i < per; i++) {
        const row = Math.floor(i / (width * channels));
        x[n * per + i] = rng.nextNormal() * 0.5 + (row % classes === label ? 1 : 0);
      }
    }
    images.push({ x, labels });
  }
  const batches: Batch[] = [];
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    images.forEach(({ x, labels }, index) => batches.push({ epoch, index, size: opts.size, height, width, channels, x, labels }));
  }
  return batches;
}

export function tinyConfig(model: Model, overrides: Partial<TrainerConfig> = {}): TrainerConfig {
  return {
    model, ops: stockOps, seed: 1, epochs: 3, stepsPerEpoch: 4,
    sparsity: { method: 'rigl', density: 0.3, distribution: 'erk', updateEvery: 2 },
    lr: { kind: 'constant', baseLr: 0.05 },
    optimizer: { momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
    ...overrides,
  };
}

export const bytesOf = (a: Float32Array | Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** All parameter values of a model, for bit-level comparison. */
export function paramBytes(model: Model): Buffer {
  return Buffer.concat(model.specs.map((s) => bytesOf(model.params.get(s.name)!.dataSync() as Float32Array)));
}
