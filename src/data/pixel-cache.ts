import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFully } from '../sinks/atomic-file';
import { sharedBytes } from './shared-memory';
import type { ImageDataset } from './types';

/**
 * The packed cache of a decoded image folder: one file holding labels and pixels, valid for one `key`
 * (a hash of the source file list, sizes and modification times). Layout:
 * "CIGLPIX1", uint32 LE header length, JSON header {key, count, height, width, channels, classNames},
 * zero padding to a multiple of 4, int32 LE labels, uint8 NHWC pixels.
 */
const MAGIC = 'CIGLPIX1';

interface CacheHeader {
  readonly key: string;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classNames: readonly string[];
}

export function hashKey(parts: unknown): string {
  return crypto.createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** The data set stored at `file` if it exists, is intact and was made for `key`; otherwise undefined. */
export function readPixelCache(file: string, key: string, source: string): ImageDataset | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const prefix = Buffer.alloc(MAGIC.length + 4);
    if (fs.readSync(fd, prefix, 0, prefix.length, 0) !== prefix.length) return undefined;
    if (prefix.toString('latin1', 0, MAGIC.length) !== MAGIC) return undefined;
    const headerLength = prefix.readUInt32LE(MAGIC.length);
    if (headerLength > size) return undefined;
    const headerBytes = Buffer.alloc(headerLength);
    fs.readSync(fd, headerBytes, 0, headerLength, prefix.length);
    const header = JSON.parse(headerBytes.toString('utf8')) as CacheHeader;
    if (header.key !== key) return undefined;
    const labelsAt = align4(prefix.length + headerLength);
    const imageBytes = header.count * header.height * header.width * header.channels;
    const pixelsAt = labelsAt + header.count * 4;
    if (size !== pixelsAt + imageBytes) return undefined;
    const labelBytes = Buffer.alloc(header.count * 4);
    fs.readSync(fd, labelBytes, 0, labelBytes.length, labelsAt);
    const labels = new Int32Array(header.count);
    for (let i = 0; i < header.count; i++) labels[i] = labelBytes.readInt32LE(i * 4);
    const images = sharedBytes(imageBytes);
    readFully(fd, images, pixelsAt);
    return { ...header, source, images, labels };
  } catch {
    return undefined; // a damaged cache is only a miss: the caller decodes again and overwrites it
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes the cache atomically (temporary file + rename), so a crash never leaves a half file behind. */
export function writePixelCache(file: string, key: string, dataset: ImageDataset): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const header: CacheHeader = {
    key,
    count: dataset.count,
    height: dataset.height,
    width: dataset.width,
    channels: dataset.channels,
    classNames: dataset.classNames,
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(headerBytes.length, MAGIC.length);
  const padding = Buffer.alloc(align4(prefix.length + headerBytes.length) - prefix.length - headerBytes.length);
  const labels = Buffer.alloc(dataset.count * 4);
  for (let i = 0; i < dataset.count; i++) labels.writeInt32LE(dataset.labels[i], i * 4);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const part of [prefix, headerBytes, padding, labels, dataset.images]) writeFully(fd, part, tmp);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function readFully(fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = fs.readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error('unexpected end of cache file');
    done += n;
  }
}

