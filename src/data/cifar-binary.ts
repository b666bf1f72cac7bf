import * as fs from 'node:fs';
import * as path from 'node:path';
import { CIFAR10_CLASSES, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, parseNamesFile } from './class-names';
import { listDirSorted, readFileOrThrow, statOrThrow } from './files';
import { sharedBytes } from './shared-memory';
import { readTarArchive } from './tar';
import type { DatasetSplits, ImageDataset } from './types';

export interface CifarBinaryOptions {
  /** CIFAR-100 only: which label byte to use. Default 'fine' (100 classes); 'coarse' gives 20. */
  readonly label?: 'fine' | 'coarse';
}

const SIDE = 32;
const PIXELS = SIDE * SIDE * 3;

/** A file found in a folder or inside an archive: its display name (for errors) and its bytes. */
interface SourceFile {
  readonly name: string;
  readonly bytes: Buffer;
}

/** Looks files up by base name, from a folder or a tarball. */
type FileLookup = (baseName: string) => Promise<SourceFile | undefined>;

/**
 * The CIFAR-10 / CIFAR-100 official binary release, from the extracted folder (the `cifar-10-batches-bin`
 * or `cifar-100-binary` folder, or its parent) or straight from the `.tar.gz`.
 *
 * CIFAR-10: `data_batch_1.bin`… (consecutive from 1; the release has 5) and `test_batch.bin`, records of
 * 1 label byte + 3072 pixel bytes. CIFAR-100: `train.bin`, `test.bin`, records of coarse + fine label
 * bytes + 3072 pixel bytes. Pixels are channel-major (R, G, B planes of 32×32) and come out NHWC.
 * Class names come from `batches.meta.txt` / `fine_label_names.txt` / `coarse_label_names.txt` when
 * present, else CIFAR's standard names. Pixels live in shared memory (see shared-memory.ts).
 */
export async function readCifarBinary(source: string, options: CifarBinaryOptions = {}): Promise<DatasetSplits> {
  const lookup = await openSource(source);
  const batch1 = await lookup('data_batch_1.bin');
  if (batch1) return readCifar10(source, lookup, batch1);
  const train100 = await lookup('train.bin');
  if (train100) return readCifar100(source, lookup, train100, options.label ?? 'fine');
  throw new Error(
    `${source}: no CIFAR binary files found (expected data_batch_1.bin … data_batch_5.bin and test_batch.bin, ` +
      `or train.bin and test.bin)`,
  );
}

async function readCifar10(source: string, lookup: FileLookup, batch1: SourceFile): Promise<DatasetSplits> {
  const trainFiles = [batch1];
  for (let n = 2; ; n++) {
    const next = await lookup(`data_batch_${n}.bin`);
    if (!next) break;
    trainFiles.push(next);
  }
  const meta = await lookup('batches.meta.txt');
  const classNames = meta ? namesFrom(meta, 10) : CIFAR10_CLASSES;
  const layout: RecordLayout = { labelBytes: 1, labelOffset: 0, classNames };
  const train = decodeCifarFiles(`${source} (train)`, trainFiles, layout);
  const testFile = await lookup('test_batch.bin');
  const test = testFile ? decodeCifarFiles(testFile.name, [testFile], layout) : undefined;
  return { train, test };
}

async function readCifar100(
  source: string,
  lookup: FileLookup,
  trainFile: SourceFile,
  label: 'fine' | 'coarse',
): Promise<DatasetSplits> {
  if (label !== 'fine' && label !== 'coarse') {
    throw new Error(`CIFAR-100 label must be 'fine' or 'coarse', got '${String(label)}'`);
  }
  const namesFile = await lookup(label === 'fine' ? 'fine_label_names.txt' : 'coarse_label_names.txt');
  const standard = label === 'fine' ? CIFAR100_FINE_CLASSES : CIFAR100_COARSE_CLASSES;
  const classNames = namesFile ? namesFrom(namesFile, standard.length) : standard;
  const layout: RecordLayout = { labelBytes: 2, labelOffset: label === 'fine' ? 1 : 0, classNames };
  const train = decodeCifarFiles(trainFile.name, [trainFile], layout);
  const testFile = await lookup('test.bin');
  const test = testFile ? decodeCifarFiles(testFile.name, [testFile], layout) : undefined;
  return { train, test };
}

function namesFrom(file: SourceFile, expected: number): string[] {
  const names = parseNamesFile(file.bytes.toString('utf8'));
  if (names.length !== expected) {
    throw new Error(`${file.name}: expected ${expected} class names, found ${names.length}`);
  }
  return names;
}

interface RecordLayout {
  /** Label bytes before the pixels: 1 (CIFAR-10) or 2 (CIFAR-100 coarse, fine). */
  readonly labelBytes: number;
  /** Which of those bytes is the label used. */
  readonly labelOffset: number;
  readonly classNames: readonly string[];
}

/** Decodes whole records of one or more files into one NHWC data set, checking sizes and labels. */
export function decodeCifarFiles(source: string, files: readonly SourceFile[], layout: RecordLayout): ImageDataset {
  const recordSize = layout.labelBytes + PIXELS;
  let count = 0;
  for (const file of files) {
    if (file.bytes.length === 0 || file.bytes.length % recordSize !== 0) {
      throw new Error(
        `${file.name}: truncated or wrongly sized CIFAR binary file: ${file.bytes.length} bytes is not a ` +
          `positive multiple of the ${recordSize}-byte record (${layout.labelBytes} label byte(s) + ${PIXELS} pixels)`,
      );
    }
    count += file.bytes.length / recordSize;
  }
  const images = sharedBytes(count * PIXELS);
  const labels = new Int32Array(count);
  const numClasses = layout.classNames.length;
  let n = 0;
  for (const file of files) {
    const bytes = file.bytes;
    const records = bytes.length / recordSize;
    for (let r = 0; r < records; r++, n++) {
      const base = r * recordSize;
      const label = bytes[base + layout.labelOffset];
      if (label >= numClasses) {
        throw new Error(
          `${file.name}: label ${label} out of range [0, ${numClasses}) in record ${r} (byte ${base + layout.labelOffset})`,
        );
      }
      labels[n] = label;
      channelMajorToNhwc(bytes, base + layout.labelBytes, images, n * PIXELS);
    }
  }
  return { source, count, height: SIDE, width: SIDE, channels: 3, images, labels, classNames: layout.classNames };
}

/** One 32×32 record: R plane, G plane, B plane → interleaved RGB pixels. */
function channelMajorToNhwc(src: Uint8Array, srcOffset: number, dst: Uint8Array, dstOffset: number): void {
  const plane = SIDE * SIDE;
  for (let p = 0; p < plane; p++) {
    const d = dstOffset + p * 3;
    dst[d] = src[srcOffset + p];
    dst[d + 1] = src[srcOffset + plane + p];
    dst[d + 2] = src[srcOffset + 2 * plane + p];
  }
}

async function openSource(source: string): Promise<FileLookup> {
  const stat = statOrThrow(source);
  if (stat.isFile()) return tarLookup(source);
  const dir = findBinaryFolder(source);
  return async (baseName) => {
    const file = path.join(dir, baseName);
    if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return undefined;
    return { name: file, bytes: await readFileOrThrow(file) };
  };
}

/** The folder itself, or the one folder below it that the official archive extracts to. */
function findBinaryFolder(dir: string): string {
  const names = listDirSorted(dir);
  if (names.some((e) => e.isFile() && e.name.endsWith('.bin'))) return dir;
  for (const sub of ['cifar-10-batches-bin', 'cifar-100-binary']) {
    if (names.some((e) => e.isDirectory() && e.name === sub)) return path.join(dir, sub);
  }
  return dir;
}

async function tarLookup(archive: string): Promise<FileLookup> {
  let entries;
  try {
    entries = await readTarArchive(archive);
  } catch (err) {
    throw new Error(`${archive}: not a readable CIFAR archive (${(err as Error).message})`, { cause: err });
  }
  const byBase = new Map<string, SourceFile>();
  for (const entry of entries) {
    const base = path.posix.basename(entry.name);
    if (!byBase.has(base)) byBase.set(base, { name: `${archive}:${entry.name}`, bytes: entry.data });
  }
  return async (baseName) => byBase.get(baseName);
}
