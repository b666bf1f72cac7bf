import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from './atomic-file';

/**
 * The final model in the standard tfjs Layers format: `model.json` + `weights.bin`, exactly what
 * tfjs-node's `file://` handler writes and reads, written here without tfjs-node (which cannot always be
 * installed). With tfjs-node, `tf.loadLayersModel('file://DIR/model.json')` loads it; without,
 * `tf.loadLayersModel(layersModelFiles(DIR))` does.
 */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/** Saves a Layers model with free-form metadata (stored as the model's userDefinedMetadata). */
export async function saveLayersModel(dir: string, model: tf.LayersModel, metadata: Record<string, unknown>): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData ? new tf.io.CompositeArrayBuffer(artifacts.weightData).slice() : new ArrayBuffer(0);
      writeFileAtomic(path.join(dir, WEIGHTS_BIN), new Uint8Array(weightData));
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs ?? [] }],
        userDefinedMetadata: metadata,
      };
      writeFileAtomic(path.join(dir, MODEL_JSON), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

/** An IOHandler that loads a model saved by saveLayersModel (or by tfjs-node) from a directory. */
export function layersModelFiles(dir: string): tf.io.IOHandler {
  return {
    load: async () => {
      const jsonFile = path.join(dir, MODEL_JSON);
      let modelJson: tf.io.ModelJSON;
      try {
        modelJson = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as tf.io.ModelJSON;
      } catch (err) {
        throw new Error(`cannot read model ${jsonFile}: ${(err as Error).message}`);
      }
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: Buffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const file = path.join(dir, p);
            try {
              buffers.push(fs.readFileSync(file));
            } catch (err) {
              throw new Error(`cannot read model weights ${file}: ${(err as Error).message}`);
            }
          }
        }
        const joined = Buffer.concat(buffers);
        return [specs, joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength)];
      });
    },
  };
}

/** The metadata saved with a model (method, densities, temperature, ECE, accuracy, config hash...). */
export function readModelMetadata(dir: string): Record<string, unknown> {
  const json = JSON.parse(fs.readFileSync(path.join(dir, MODEL_JSON), 'utf8')) as { userDefinedMetadata?: Record<string, unknown> };
  return json.userDefinedMetadata ?? {};
}
