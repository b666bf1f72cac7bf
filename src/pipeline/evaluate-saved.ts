import * as tf from '@tensorflow/tfjs';
import { concatMap, lastValueFrom } from 'rxjs';
import { gatherLogits } from '../calibrate/evaluate';
import { calibrationMetrics, type CalibrationReport } from '../calibrate/metrics';
import type { CliIo } from '../cli/command';
import type { EvalReport, EvalRequest } from '../cli/wiring';
import { loadDataset } from '../data/load';
import { splitValidation } from '../data/split';
import type { ChannelStats, ImageDataset } from '../data/types';
import { layersModelFiles, readModelMetadata } from '../sinks/layers-model-files';
import type { LayerDensity, StageResult } from '../sinks/summary';
import { evalStream } from '../stream/batch-stream';

/** What writeOutputs stores with a model (model.json's userDefinedMetadata) that evaluation needs. */
interface SavedModelMetadata {
  readonly normalisation: ChannelStats;
  readonly classNames: readonly string[];
  readonly temperature?: number;
  readonly seed?: number;
  readonly data?: { readonly format: EvalRequest['dataFormat']; readonly path: string; readonly validationFraction: number };
  readonly layers?: readonly LayerDensity[];
}

/**
 * `cigl eval`: a saved model (tfjs Layers format, as written by a run) on a data split, with plain
 * `tf.loadLayersModel`; metrics at T = 1 and at the temperature stored with the model.
 */
export async function evaluateSavedModel(request: EvalRequest, io: CliIo): Promise<EvalReport> {
  const metadata = readModelMetadata(request.modelDir) as unknown as SavedModelMetadata;
  if (!metadata.normalisation || !metadata.classNames) {
    throw new Error(`${request.modelDir}/model.json has no cigl metadata (normalisation, classNames); was it written by cigl?`);
  }
  const dataPath = request.dataPath ?? metadata.data?.path;
  if (!dataPath) throw new Error(`--data is required: ${request.modelDir} does not record the data it was trained on`);
  const dataset = await pickSplit(request, dataPath, metadata);
  if (dataset.classNames.length !== metadata.classNames.length) {
    throw new Error(`${dataPath} has ${dataset.classNames.length} classes, the model ${metadata.classNames.length}`);
  }
  const model = await tf.loadLayersModel(layersModelFiles(request.modelDir));
  try {
    const numClasses = metadata.classNames.length;
    const { logits, labels } = await lastValueFrom(
      evalStream({ dataset, stats: metadata.normalisation, batchSize: request.batchSize, workers: 0 }).pipe(
        concatMap(async (batch) => {
          const out = tf.tidy(() => model.predict(tf.tensor(batch.x, [batch.size, batch.height, batch.width, batch.channels])) as tf.Tensor);
          const values = (await out.data()) as Float32Array;
          out.dispose();
          return { epoch: batch.epoch, index: batch.index, numClasses, logits: values, labels: batch.labels };
        }),
        gatherLogits(numClasses),
      ),
    );
    const at = (temperature: number): CalibrationReport => calibrationMetrics(logits, labels, numClasses, { binCounts: request.bins, temperature });
    const result = (stage: string, r: CalibrationReport, temperature?: number): StageResult => ({
      stage, accuracy: r.accuracy, ece: Object.fromEntries(r.equalWidth.map((b) => [String(b.bins), b.ece])), nll: r.nll, brier: r.brier, temperature,
    });
    const results = [result('saved model', at(1))];
    if (metadata.temperature !== undefined && metadata.temperature !== 1) results.push(result('with its stored temperature', at(metadata.temperature), metadata.temperature));
    io.stderr.write(`cigl: evaluated ${dataset.count} images of ${dataset.source}\n`);
    return { split: request.split, results, layers: metadata.layers };
  } finally {
    model.dispose();
  }
}

async function pickSplit(request: EvalRequest, dataPath: string, metadata: SavedModelMetadata): Promise<ImageDataset> {
  const format = request.dataPath ? request.dataFormat : metadata.data?.format ?? request.dataFormat;
  const splits = await loadDataset({ format, path: dataPath });
  if (request.split === 'test') {
    if (!splits.test) throw new Error(`${dataPath} has no test split; use --split validation or train`);
    return splits.test;
  }
  const parts = splitValidation(splits.train, { fraction: metadata.data?.validationFraction ?? 0.1, seed: metadata.seed ?? 0 });
  return request.split === 'validation' ? parts.validation : parts.train;
}
