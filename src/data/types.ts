/**
 * The in-memory form every data source produces: uint8 images, NHWC (row-major height, width, channel),
 * with integer labels and the class names in label order.
 */
export interface ImageDataset {
  /** Human-readable origin, used in error messages and logs (a path or a data set name). */
  readonly source: string;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** count × height × width × channels bytes. */
  readonly images: Uint8Array;
  /** count labels, each in [0, classNames.length). */
  readonly labels: Int32Array;
  readonly classNames: readonly string[];
}

/** The standard splits of a data set; `validation` is carved out of `train` by seed (see data/split.ts). */
export interface DatasetSplits {
  readonly train: ImageDataset;
  readonly test?: ImageDataset;
}

/** Per-channel statistics of the training part, in [0, 1] pixel units, used for normalisation. */
export interface ChannelStats {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** How a data set's files are read (`auto`: told from the path). */
export const DATA_FORMATS = ['auto', 'image-folder', 'cifar-binary', 'idx'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

/** The splits of a run's data: the training part, the held-out validation part, the test split. */
export const SPLITS = ['train', 'validation', 'test'] as const;
export type Split = (typeof SPLITS)[number];
