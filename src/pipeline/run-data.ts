import * as fs from 'node:fs';
import type { RunConfig } from '../config/config';
import { loadDataset } from '../data/load';
import { channelStats, runTrainingParts } from '../data/split';
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
  const { train, validation } = runTrainingParts(splits.train, { validationFraction: config.data.validationFraction, trainImages: config.data.trainImages, seed: config.seed });
  if (validation.count === 0) {
    throw new Error(`data.validationFraction ${config.data.validationFraction} holds out no image of ${splits.train.count}; validation and temperature scaling need some`);
  }
  return { train, validation, test: splits.test, stats: channelStats(train), classNames: splits.train.classNames };
}

/**
 * Why the configured data set cannot be there at all (data.path does not exist or cannot be reached),
 * or undefined. Checked before a run directory is created, so that such a run is refused with nothing
 * left behind; whatever else is wrong with the data shows when the run reads it.
 */
export function dataPathMissing(config: RunConfig): string | undefined {
  try {
    fs.statSync(config.data.path);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be reached (permission denied)' : `cannot be read (${code ?? (err as Error).message})`;
    return `${JSON.stringify(config.data.path)} ${reason}`;
  }
}
