import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ChannelStats } from '../data/types';
import { createModel } from '../models/build';
import { layersTensors } from '../models/export-layers';
import type { Model } from '../models/model';
import { MODEL_NAMES, type ModelName } from '../models/zoo';
import { layersModelFiles, MODEL_JSON } from '../sinks/layers-model-files';
import { ModelMetadataSchema, type ModelMetadata } from '../sinks/model-metadata';

/**
 * A model a run saved (`runs/NAME/model`: tfjs Layers model.json + weights.bin with cigl's metadata),
 * loaded back into a cigl Model, so that evaluation and prediction run its forward pass on the same
 * compute path as training (the native addon where built) instead of tfjs' Layers model on the stock
 * backend. The weights are read from the files directly (no `file://` fetch, so plain @tensorflow/tfjs
 * suffices) and matched to the model's tensors by the Layers names (see layersTensors).
 */

/** What writeOutputs stores in model.json's userDefinedMetadata (see sinks/model-metadata.ts). */
export type SavedModelMetadata = ModelMetadata;

export interface SavedModel {
  readonly dir: string;
  readonly metadata: SavedModelMetadata;
  /** The model with its parameters and BatchNorm statistics set to the saved values. */
  readonly model: Model;
  /** The stored temperature (1 when the model has none). */
  readonly temperature: number;
  dispose(): void;
}

/** Reads and checks the cigl metadata of a saved model directory; errors name model.json and the field. */
export function readSavedModelMetadata(dir: string): SavedModelMetadata {
  const file = path.join(dir, MODEL_JSON);
  let json: { userDefinedMetadata?: Record<string, unknown> };
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof json;
  } catch (err) {
    throw new Error(`cannot read model ${file}: ${(err as Error).message}`);
  }
  const m = json.userDefinedMetadata;
  if (!m || typeof m !== 'object') throw new Error(`${file} has no cigl metadata (userDefinedMetadata); was it written by cigl?`);
  const bad = (field: string, expected: string): never => {
    throw new Error(`${file}: metadata field ${field} is ${JSON.stringify(m[field])}; expected ${expected}`);
  };
  const parsed = ModelMetadataSchema.safeParse(m);
  if (!parsed.success) {
    const field = String(parsed.error.issues[0].path[0] ?? '(top level)');
    const channels = Array.isArray(m.inputShape) ? String(m.inputShape[2]) : 'N';
    bad(field, (EXPECTED[field] ?? parsed.error.issues[0].message).replace('N values', `${channels} values`));
  }
  const metadata = parsed.data!;
  const channels = metadata.inputShape[2];
  const { mean, std } = metadata.normalisation;
  if (mean.length !== channels || std.length !== channels) bad('normalisation', EXPECTED.normalisation.replace('N', String(channels)));
  return metadata;
}

/** What the checked fields must be, in error messages. */
const EXPECTED: Readonly<Record<string, string>> = {
  model: `one of ${MODEL_NAMES.join(', ')}`,
  inputShape: '[height, width, channels]',
  classNames: 'a list of at least two class names',
  normalisation: '{ mean, std } with N values each (std > 0)',
  temperature: 'a positive number',
};

/**
 * Loads a saved model onto the current tfjs backend (select the compute path first). Throws naming the
 * file when a weight is missing, unexpected or of the wrong shape.
 */
export async function loadSavedModel(dir: string): Promise<SavedModel> {
  const metadata = readSavedModelMetadata(dir);
  const [height, width, channels] = metadata.inputShape;
  const model = createModel(metadata.model, { seed: 0, inputShape: [height, width, channels], numClasses: metadata.classNames.length });
  try {
    await loadWeights(dir, model);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { dir, metadata, model, temperature: metadata.temperature ?? 1, dispose: () => model.dispose() };
}

async function loadWeights(dir: string, model: Model): Promise<void> {
  const artifacts = await layersModelFiles(dir).load!();
  const source = path.join(dir, MODEL_JSON);
  if (!artifacts.weightSpecs || !artifacts.weightData) throw new Error(`${source} lists no weights`);
  const saved = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
  try {
    const expected = layersTensors(model.architecture);
    const unexpected = Object.keys(saved).filter((name) => !expected.some((t) => t.layersName === name));
    if (unexpected.length > 0) {
      throw new Error(`${source}: weights ${unexpected.join(', ')} are not in a ${model.name} of this shape; was the model written by another cigl version?`);
    }
    for (const t of expected) {
      const value = saved[t.layersName];
      if (!value) throw new Error(`${source}: weight ${t.layersName} (cigl ${t.ciglName}) is missing`);
      if (value.shape.length !== t.shape.length || value.shape.some((d, i) => d !== t.shape[i])) {
        throw new Error(`${source}: weight ${t.layersName} has shape [${value.shape}], the ${model.name} needs [${t.shape}]`);
      }
      target(model, t.ciglName).assign(value);
    }
  } finally {
    tf.dispose(Object.values(saved));
  }
}

/** The variable behind a cigl tensor name: a parameter, or a BatchNorm statistic (`mean/L`, `variance/L`). */
function target(model: Model, ciglName: string): tf.Variable {
  const param = model.params.get(ciglName);
  if (param) return param;
  const [kind, layer] = ciglName.split('/');
  const stats = model.bnStats.get(layer);
  if (stats && kind === 'mean') return stats.mean;
  if (stats && kind === 'variance') return stats.variance;
  throw new Error(`model ${model.name} has no tensor '${ciglName}'`);
}
