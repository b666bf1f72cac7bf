import type { ImageDataset } from '../../src/data/types';
import { Rng } from '../../src/util/rng';

/** A small in-memory data set of seeded random pixels and labels (plain, not shared, memory). */
export function randomDataset(
  count: number,
  shape: { height: number; width: number; channels: number } = { height: 32, width: 32, channels: 3 },
  classes = 10,
  seed = 1,
): ImageDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * shape.height * shape.width * shape.channels);
  for (let i = 0; i < images.length; i++) images[i] = rng.nextInt(256);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) labels[i] = rng.nextInt(classes);
  const classNames = Array.from({ length: classes }, (_, i) => `class${i}`);
  return { source: `random(${count})`, count, ...shape, images, labels, classNames };
}

/** CIFAR binary records (labelBytes label bytes + 3072 channel-major pixels) from seeded random data. */
export function cifarRecords(count: number, labels: readonly number[][], seed: number): Buffer {
  const rng = new Rng(seed);
  const recordSize = labels[0].length + 3072;
  const out = Buffer.alloc(count * recordSize);
  for (let r = 0; r < count; r++) {
    labels[r].forEach((l, i) => (out[r * recordSize + i] = l));
    for (let p = labels[r].length; p < recordSize; p++) out[r * recordSize + p] = rng.nextInt(256);
  }
  return out;
}

/** An IDX file built by hand: magic (0, 0, type, ndims), big-endian uint32 sizes, then the data. */
export function idxFile(dims: number[], data: ArrayLike<number>, type = 0x08): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = type;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(Array.from(data))]);
}
