import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMaybeGzipped } from './files';
import { sharedBytes } from './shared-memory';
import type { DatasetSplits, ImageDataset } from './types';

/** An unsigned-byte IDX array: its dimensions and its data (a view into the file bytes). */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const UBYTE = 0x08;

/**
 * Parses an IDX file (the MNIST format): 2 zero bytes, a type byte (only 0x08, unsigned byte, is
 * supported), a dimension count, big-endian uint32 sizes, then the data. The file length must match.
 */
export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  if (bytes.length < 4) throw new Error(`${source}: not an IDX file: only ${bytes.length} bytes`);
  const magic = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(`${source}: bad IDX magic 0x${hex(magic)} (expected 0x00000801 / 0x00000803 style)`);
  }
  if (bytes[2] !== UBYTE) {
    throw new Error(`${source}: IDX magic 0x${hex(magic)} has data type 0x${bytes[2].toString(16)}; only unsigned byte (0x08) is supported`);
  }
  const ndims = bytes[3];
  const headerSize = 4 + 4 * ndims;
  if (ndims === 0 || bytes.length < headerSize) {
    throw new Error(`${source}: IDX magic 0x${hex(magic)} declares ${ndims} dimensions but the header is truncated (${bytes.length} bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const expected = dims.reduce((a, b) => a * b, 1);
  const actual = bytes.length - headerSize;
  if (actual !== expected) {
    throw new Error(`${source}: IDX shape [${dims.join(', ')}] needs ${expected} data bytes, the file has ${actual}`);
  }
  return { dims, data: bytes.subarray(headerSize) };
}

export interface IdxOptions {
  /** Class names in label order. Default: '0'…'9' (MNIST digits; Fashion-MNIST users pass theirs). */
  readonly classNames?: readonly string[];
}

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** An images file (N×H×W, or N×H×W×C) and its labels file (N), each plain or gzipped. */
export async function readIdx(imagesFile: string, labelsFile: string, options: IdxOptions = {}): Promise<ImageDataset> {
  const images = parseIdx(await readMaybeGzipped(imagesFile), imagesFile);
  const labels = parseIdx(await readMaybeGzipped(labelsFile), labelsFile);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new Error(`${imagesFile}: IDX images must have shape [N, H, W] or [N, H, W, C], got [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1) {
    throw new Error(`${labelsFile}: IDX labels must have shape [N], got [${labels.dims.join(', ')}]`);
  }
  const [count, height, width] = images.dims;
  const channels = images.dims[3] ?? 1;
  if (labels.dims[0] !== count) {
    throw new Error(`${labelsFile}: ${labels.dims[0]} labels, but ${imagesFile} holds ${count} images`);
  }
  const classNames = options.classNames ?? DIGITS;
  const labelArray = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = labels.data[i];
    if (label >= classNames.length) {
      throw new Error(`${labelsFile}: label ${label} out of range [0, ${classNames.length}) at index ${i}`);
    }
    labelArray[i] = label;
  }
  const pixels = sharedBytes(images.data.length);
  pixels.set(images.data);
  return { source: imagesFile, count, height, width, channels, images: pixels, labels: labelArray, classNames };
}

/**
 * A folder with the standard MNIST / Fashion-MNIST file names, each plain or `.gz`:
 * `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, and optionally `t10k-images-idx3-ubyte`,
 * `t10k-labels-idx1-ubyte`.
 */
export async function readIdxFolder(dir: string, options: IdxOptions = {}): Promise<DatasetSplits> {
  const find = (stem: string, required: boolean): string | undefined => {
    for (const name of [stem, `${stem}.gz`]) {
      const file = path.join(dir, name);
      if (fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return file;
    }
    if (required) throw new Error(`${dir}: missing IDX file ${stem} (or ${stem}.gz)`);
    return undefined;
  };
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`cannot read ${dir}: not a folder of IDX files`);
  }
  const train = await readIdx(find('train-images-idx3-ubyte', true)!, find('train-labels-idx1-ubyte', true)!, options);
  const testImages = find('t10k-images-idx3-ubyte', false);
  const test = testImages ? await readIdx(testImages, find('t10k-labels-idx1-ubyte', true)!, options) : undefined;
  return { train, test };
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
