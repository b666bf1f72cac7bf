import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCifarBinary } from './cifar-binary';
import { statOrThrow } from './files';
import { readIdxFolder } from './idx';
import { readImageFolderSplits } from './image-folder';
import type { DatasetSplits } from './types';

/** CIFAR-10 / CIFAR-100 binary release: extracted folder or the official `.tar.gz`. */
export interface CifarBinarySpec {
  readonly format: 'cifar-binary';
  readonly path: string;
  /** CIFAR-100 only; default 'fine'. */
  readonly label?: 'fine' | 'coarse';
}

/** `path/SPLIT/CLASS/*.{jpg,jpeg,png}`, decoded once into a packed cache. */
export interface ImageFolderSpec {
  readonly format: 'image-folder';
  readonly path: string;
  /** Default 'train'. */
  readonly trainSplit?: string;
  /** Default 'test' (optional when left at the default). */
  readonly testSplit?: string;
  /** Default `.cache/cigl` under the working directory; false disables the cache. */
  readonly cacheDir?: string | false;
  /** Decode threads; default min(2, cores). */
  readonly workers?: number;
  /** 3 (RGB, default) or 1 (greyscale). */
  readonly channels?: 1 | 3;
}

/** MNIST / Fashion-MNIST IDX files (plain or .gz) with their standard names in one folder. */
export interface IdxSpec {
  readonly format: 'idx';
  readonly path: string;
  /** Default '0'…'9'. */
  readonly classNames?: readonly string[];
}

/** Any of the above, told from the path by detectFormat; reader options of the detected format apply. */
export interface AutoSpec extends Omit<CifarBinarySpec, 'format'>, Omit<ImageFolderSpec, 'format'>, Omit<IdxSpec, 'format'> {
  readonly format: 'auto';
}

export type DatasetSpec = CifarBinarySpec | ImageFolderSpec | IdxSpec | AutoSpec;
export type DatasetFormat = Exclude<DatasetSpec['format'], 'auto'>;

/**
 * Reads the data set a spec names (as a CLI or config would write it) into train and, when present,
 * test splits. Hold out validation afterwards with splitValidation.
 */
export async function loadDataset(spec: DatasetSpec): Promise<DatasetSplits> {
  switch (spec.format) {
    case 'cifar-binary':
      return readCifarBinary(spec.path, { label: spec.label });
    case 'image-folder':
      return readImageFolderSplits(spec.path, spec);
    case 'idx':
      return readIdxFolder(spec.path, { classNames: spec.classNames });
    case 'auto':
      return loadDataset({ ...spec, format: detectFormat(spec.path) } as DatasetSpec);
    default:
      throw new Error(
        `unknown data set format '${(spec as { format?: unknown }).format}' (known: auto, cifar-binary, image-folder, idx)`,
      );
  }
}

/**
 * Guesses the format of a path, for a CLI that takes only a path: an archive or a folder of `.bin` files
 * is the CIFAR binary release, IDX file names mean IDX, a folder with a `train` sub-folder is an image folder.
 */
export function detectFormat(source: string): DatasetFormat {
  const stat = statOrThrow(source);
  if (stat.isFile()) {
    if (/\.(tar\.gz|tgz|tar)$/i.test(source)) return 'cifar-binary';
    throw new Error(`${source}: cannot tell the data set format of this file (expected a CIFAR .tar.gz)`);
  }
  const names = fs.readdirSync(source);
  if (names.some((n) => n.endsWith('.bin')) || names.includes('cifar-10-batches-bin') || names.includes('cifar-100-binary')) {
    return 'cifar-binary';
  }
  if (names.some((n) => n.startsWith('train-images-idx'))) return 'idx';
  if (names.includes('train') && fs.statSync(path.join(source, 'train')).isDirectory()) return 'image-folder';
  throw new Error(
    `${source}: cannot tell the data set format (expected CIFAR .bin files, IDX files, or a train/CLASS/ image folder)`,
  );
}
