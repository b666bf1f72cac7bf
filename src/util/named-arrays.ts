/**
 * A plain, tensor-free copy of named float arrays (weights, masks, gradients). Events, checkpoints and
 * workers carry these instead of tf.Tensors so that a subscriber never has to manage tensor memory.
 */
export interface NamedArray {
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

export type NamedArrays = Readonly<Record<string, NamedArray>>;

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
