import type { ImageDataset } from './types';

/**
 * Zeroed bytes backed by a SharedArrayBuffer. Readers put pixels here so that worker pools can share
 * the data set at creation (a SharedArrayBuffer crosses postMessage without a copy).
 */
export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}

export function isShared(bytes: Uint8Array): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && bytes.buffer instanceof SharedArrayBuffer;
}

/** The same data set with its pixels in shared memory: returned as is when they already are (no copy). */
export function withSharedPixels(dataset: ImageDataset): ImageDataset {
  if (isShared(dataset.images)) return dataset;
  const images = sharedBytes(dataset.images.length);
  images.set(dataset.images);
  return { ...dataset, images };
}
