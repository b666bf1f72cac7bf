import { detectFormat, loadDataset, type DatasetSpec } from '../data/load';
import { readImageFolder } from '../data/image-folder';
import { runTrainingParts } from '../data/split';
import type { ImageDataset } from '../data/types';
import type { SavedModelMetadata } from './saved-model';

/** Which images of a data set to evaluate or predict a saved model on. */
export interface ModelDataRequest {
  /** The data set; undefined: the one the model was trained on (from its metadata). */
  readonly dataPath?: string;
  readonly dataFormat: DatasetSpec['format'];
  /** `validation` and `train` are the parts of the training split the run used (its seed and fraction). */
  readonly split: 'train' | 'validation' | 'test';
}

/**
 * A split of the data a saved model is to be run on, with the model's class order checked. The test
 * split of an image folder is read alone (the training images are not decoded for it).
 */
export async function readModelSplit(metadata: SavedModelMetadata, modelDir: string, request: ModelDataRequest): Promise<ImageDataset> {
  const dataPath = request.dataPath ?? metadata.data?.path;
  if (!dataPath) throw new Error(`--data is required: ${modelDir} does not record the data it was trained on`);
  const format = request.dataPath ? request.dataFormat : (metadata.data?.format ?? request.dataFormat);
  const dataset = await readSplit(dataPath, format, request.split, metadata);
  if (dataset.classNames.length !== metadata.classNames.length) {
    throw new Error(`${dataPath} has ${dataset.classNames.length} classes, the model ${metadata.classNames.length}`);
  }
  return dataset;
}

async function readSplit(dataPath: string, format: DatasetSpec['format'], split: ModelDataRequest['split'], metadata: SavedModelMetadata): Promise<ImageDataset> {
  const resolved = format === 'auto' ? detectFormat(dataPath) : format;
  if (split === 'test' && resolved === 'image-folder') {
    return readImageFolder(dataPath, { split: 'test', classNames: metadata.classNames });
  }
  const splits = await loadDataset({ format: resolved, path: dataPath } as DatasetSpec);
  if (split === 'test') {
    if (!splits.test) throw new Error(`${dataPath} has no test split; use --split validation or train`);
    return splits.test;
  }
  const parts = runTrainingParts(splits.train, { validationFraction: metadata.data?.validationFraction ?? 0.1, trainImages: metadata.data?.trainImages, seed: metadata.seed ?? 0 });
  return split === 'validation' ? parts.validation : parts.train;
}
