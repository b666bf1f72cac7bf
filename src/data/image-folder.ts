import { setMaxListeners } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Piscina from 'piscina';
import { workerPath } from '../util/worker-path';
import { listDirSorted, statOrThrow } from './files';
import { decodeImage, decodeInto, type DecodeTask } from './image-decode';
import { hashKey, readPixelCache, writePixelCache } from './pixel-cache';
import { sharedBytes } from './shared-memory';
import type { DatasetSplits, ImageDataset } from './types';

export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png'];

/** Bump when the decoded bytes for the same files would change, so old caches are not reused. */
const CACHE_FORMAT = 1;

export interface ImageFolderOptions {
  /** Sub-folder of the root to read, e.g. 'train'. */
  readonly split: string;
  /**
   * Label order to impose (e.g. the training split's classes when reading 'test'); a class folder not in
   * it is an error. Default: the split's class folder names, sorted by code unit.
   */
  readonly classNames?: readonly string[];
  /** 3 (RGB; alpha dropped, grey expanded) or 1 (greyscale). Default 3. */
  readonly channels?: 1 | 3;
  /** Where the packed cache lives; default `.cache/cigl` under the current working directory; false: none. */
  readonly cacheDir?: string | false;
  /**
   * Decode threads; 0 decodes on the calling thread. Default: 0 for fewer than 256 images (starting
   * threads would cost more than it saves), else min(2, available cores).
   */
  readonly workers?: number;
}

/** Where the packed cache of image folders goes unless told otherwise (the source may be read-only). */
export function defaultCacheDir(): string {
  return path.resolve('.cache', 'cigl');
}

/**
 * An image folder split, `ROOT/SPLIT/CLASS/*.{jpg,jpeg,png}`: classes are the sorted folder names (for
 * CIFAR-10 that is the official label order), images sorted by file name within a class. Decoded with
 * sharp in worker threads once, then kept in a packed cache file keyed on the file list, sizes and
 * modification times, and reloaded from it while the source is unchanged. All images must share the
 * first one's size. Hidden files (".…") are skipped; any other non-image file is an error.
 */
export async function readImageFolder(root: string, options: ImageFolderOptions): Promise<ImageDataset> {
  const channels = options.channels ?? 3;
  const splitDir = path.join(root, options.split);
  const listing = listSplit(splitDir, options.classNames);
  const key = hashKey({
    format: CACHE_FORMAT,
    channels,
    classNames: listing.classNames,
    files: listing.files.map((f, i) => [path.relative(splitDir, f.file), f.size, f.mtimeMs, listing.labels[i]]),
  });
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const cacheFile = cacheDir && path.join(cacheDir, `image-folder-${hashKey(path.resolve(splitDir)).slice(0, 16)}.bin`);
  if (cacheFile) {
    const cached = readPixelCache(cacheFile, key, splitDir);
    if (cached) return cached;
  }
  const dataset = await decodeAll(splitDir, listing, channels, options.workers);
  if (cacheFile) {
    try {
      writePixelCache(cacheFile, key, dataset);
    } catch (err) {
      process.emitWarning(`could not write image cache ${cacheFile}: ${(err as Error).message}; continuing without it`);
    }
  }
  return dataset;
}

export interface ImageFolderSplitsOptions extends Omit<ImageFolderOptions, 'split' | 'classNames'> {
  /** Default 'train'. */
  readonly trainSplit?: string;
  /** Default 'test'; a missing default test folder means no test split, a missing named one is an error. */
  readonly testSplit?: string;
}

/** Train and test splits of an image folder root; the test split uses the training split's classes. */
export async function readImageFolderSplits(root: string, options: ImageFolderSplitsOptions = {}): Promise<DatasetSplits> {
  statOrThrow(root);
  const { trainSplit = 'train', testSplit, ...rest } = options;
  const train = await readImageFolder(root, { ...rest, split: trainSplit });
  const testName = testSplit ?? 'test';
  const testExists = isDirectory(path.join(root, testName));
  if (!testExists && testSplit === undefined) return { train };
  const test = await readImageFolder(root, { ...rest, split: testName, classNames: train.classNames });
  return { train, test };
}

interface FileInfo {
  readonly file: string;
  readonly size: number;
  readonly mtimeMs: number;
}

interface SplitListing {
  readonly classNames: readonly string[];
  readonly files: readonly FileInfo[];
  readonly labels: Int32Array;
}

function listSplit(splitDir: string, imposed: readonly string[] | undefined): SplitListing {
  const stat = fs.statSync(splitDir, { throwIfNoEntry: false });
  if (!stat) throw new Error(`missing split folder ${splitDir} (expected ${path.join(splitDir, 'CLASS', '*.jpg')})`);
  if (!stat.isDirectory()) throw new Error(`${splitDir}: split path is not a folder`);
  const classDirs: string[] = [];
  for (const entry of listDirSorted(splitDir)) {
    if (entry.name.startsWith('.')) continue;
    if (!entry.isDirectory()) {
      throw new Error(`${path.join(splitDir, entry.name)}: unexpected file in a split folder (expected class folders)`);
    }
    classDirs.push(entry.name);
  }
  const classNames = imposed ?? classDirs;
  if (classNames.length === 0) throw new Error(`${splitDir}: no class folders`);
  const files: FileInfo[] = [];
  const labels: number[] = [];
  for (const name of classDirs) {
    const label = classNames.indexOf(name);
    if (label < 0) {
      throw new Error(`${path.join(splitDir, name)}: class '${name}' is not among the classes [${classNames.join(', ')}]`);
    }
    const classDir = path.join(splitDir, name);
    for (const entry of listDirSorted(classDir)) {
      if (entry.name.startsWith('.')) continue;
      const file = path.join(classDir, entry.name);
      if (!entry.isFile() || !IMAGE_EXTENSIONS.includes(path.extname(entry.name).toLowerCase())) {
        throw new Error(`${file}: not an image file (expected ${IMAGE_EXTENSIONS.join(', ')})`);
      }
      const stat = statOrThrow(file);
      files.push({ file, size: stat.size, mtimeMs: stat.mtimeMs });
      labels.push(label);
    }
  }
  if (files.length === 0) throw new Error(`${splitDir}: no images in its class folders`);
  return { classNames, files, labels: Int32Array.from(labels) };
}

const SMALL_FOLDER = 256;

async function decodeAll(
  splitDir: string,
  listing: SplitListing,
  channels: 1 | 3,
  workers = listing.files.length < SMALL_FOLDER ? 0 : Math.min(2, os.availableParallelism()),
): Promise<ImageDataset> {
  if (!(Number.isInteger(workers) && workers >= 0)) throw new Error(`decode workers must be an integer ≥ 0, got ${workers}`);
  const files = listing.files.map((f) => f.file);
  const first = await decodeImage(files[0], channels);
  const { height, width } = first;
  const pixels = sharedBytes(files.length * height * width * channels);
  const whole: DecodeTask = { files, first: 0, pixels, height, width, channels, referenceFile: files[0] };
  await (workers === 0 ? decodeInto(whole) : decodeInWorkers(whole, workers));
  return {
    source: splitDir,
    count: files.length,
    height,
    width,
    channels,
    images: pixels,
    labels: listing.labels,
    classNames: listing.classNames,
  };
}

/** Splits the work into chunks for a pool of sharp worker threads, each writing its slice in place. */
async function decodeInWorkers(whole: DecodeTask, workers: number): Promise<void> {
  const files = whole.files;
  const pool = new Piscina<DecodeTask, void>({
    filename: workerPath('decode-images'),
    minThreads: workers,
    maxThreads: workers,
  });
  const abort = new AbortController();
  try {
    const chunk = Math.max(64, Math.min(1024, Math.ceil(files.length / (workers * 8))));
    const tasks: Promise<void>[] = [];
    setMaxListeners(Math.ceil(files.length / chunk) + 10, abort.signal); // one listener per queued task
    for (let start = 0; start < files.length; start += chunk) {
      const task: DecodeTask = { ...whole, files: files.slice(start, start + chunk), first: start };
      tasks.push(pool.run(task, { signal: abort.signal }));
    }
    await firstFailure(tasks, abort);
  } finally {
    await pool.destroy();
  }
}

/** Waits for all tasks; on the first failure cancels the rest and rethrows that failure (not an AbortError). */
async function firstFailure(tasks: Promise<void>[], abort: AbortController): Promise<void> {
  let failure: unknown;
  await Promise.all(
    tasks.map((t) =>
      t.catch((err) => {
        if (failure === undefined) {
          failure = err;
          abort.abort();
        }
      }),
    ),
  );
  if (failure !== undefined) throw failure;
}

function isDirectory(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
