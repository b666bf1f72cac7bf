import type { NamedArray } from '../util/named-arrays';
import { sizeOf } from '../util/named-arrays';
import { Rng } from '../util/rng';
import type { LayerAllocation } from './density';

/**
 * A layer's deterministic mask M as one byte per weight (1 = active), kept on the host where mask updates
 * happen; the training step uploads it as a float tensor. Only masked weights have masks: biases and
 * BatchNorm parameters never do.
 */
export type Mask = Uint8Array;

/** A mask with exactly `active` ones at uniformly random positions (partial Fisher–Yates). */
export function randomMask(size: number, active: number, rng: Rng): Mask {
  if (!(Number.isInteger(active) && active >= 0 && active <= size)) {
    throw new Error(`randomMask: active count ${active} must be an integer in [0, ${size}]`);
  }
  const order = new Int32Array(size);
  for (let i = 0; i < size; i++) order[i] = i;
  for (let i = 0; i < active; i++) {
    const j = i + rng.nextInt(size - i);
    const tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  const mask = new Uint8Array(size);
  for (let i = 0; i < active; i++) mask[order[i]] = 1;
  return mask;
}

/** The initial random masks, one stream per layer: (seed, 'mask-init', layer name). */
export function initialMasks(layers: readonly LayerAllocation[], seed: number): Map<string, Mask> {
  return new Map(layers.map((l) => [l.name, randomMask(l.size, l.active, Rng.derive(seed, 'mask-init', l.name))]));
}

export function countActive(mask: Mask): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i];
  return n;
}

/** Zeroes `values` wherever the mask is 0, in place. */
export function applyMask(values: Float32Array, mask: Mask): Float32Array {
  for (let i = 0; i < mask.length; i++) if (mask[i] === 0) values[i] = 0;
  return values;
}

export function maskToFloat32(mask: Mask): Float32Array {
  return Float32Array.from(mask);
}

/** Reads a mask saved as 0/1 floats; `what` names it in errors (e.g. 'checkpoint mask/conv1.w'). */
export function maskFromArray(array: NamedArray, expectedShape: readonly number[], what: string): Mask {
  if (array.shape.join(',') !== expectedShape.join(',') || array.values.length !== sizeOf(expectedShape)) {
    throw new Error(`${what}: shape [${array.shape.join(', ')}] does not match [${expectedShape.join(', ')}]`);
  }
  const mask = new Uint8Array(array.values.length);
  for (let i = 0; i < mask.length; i++) {
    const v = array.values[i];
    if (v !== 0 && v !== 1) throw new Error(`${what}: value ${v} at index ${i} is not 0 or 1`);
    mask[i] = v;
  }
  return mask;
}
