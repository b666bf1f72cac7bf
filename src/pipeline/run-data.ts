import type { RunConfig } from '../cli/config';
import { loadDataset } from '../data/load';
import { channelStats, splitValidation } from '../data/split';
import type { ChannelStats, ImageDataset } from '../data/types';

/** The data of one run: training part, held-out validation part, test split, normalisation. */
export interface RunData {
  readonly train: ImageDataset;
  readonly validation: ImageDataset;
  readonly test?: ImageDataset;
  /** Per-channel statistics of the training part only. */
  readonly stats: ChannelStats;
  readonly classNames: readonly string[];
}

/** Reads the configured data set and holds out the validation part (by seed). */
export async function prepareRunData(config: RunConfig): Promise<RunData> {
  const splits = await loadDataset({ format: config.data.format, path: config.data.path });
  const { train, validation } = splitValidation(splits.train, { fraction: config.data.validationFraction, seed: config.seed });
  if (validation.count === 0) {
    throw new Error(`data.validationFraction ${config.data.validationFraction} holds out no image of ${splits.train.count}; validation and temperature scaling need some`);
  }
  return { train, validation, test: splits.test, stats: channelStats(train), classNames: splits.train.classNames };
}
