import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../stream/batch';
import { sizeOf, type NamedArrays } from '../util/named-arrays';
import type { Model } from './model';

/** Parameter values for Model.apply: plain arrays (e.g. averaged weights) or tensors the caller owns. */
export type ParamValues = NamedArrays | Readonly<Record<string, tf.Tensor>>;

export interface ParamTensors {
  /** A tensor for every spec name of the model. */
  readonly tensors: Readonly<Record<string, tf.Tensor>>;
  /** Disposes the tensors this call created (never the caller's own). */
  dispose(): void;
}

/**
 * Turns `params` into the tensors Model.apply takes, checking that every spec of the model is present
 * with its shape. Plain arrays become new tensors, released by `dispose()`; tensors pass through as they
 * are.
 */
export function paramTensors(model: Model, params: ParamValues): ParamTensors {
  const tensors: Record<string, tf.Tensor> = {};
  const created: tf.Tensor[] = [];
  try {
    for (const spec of model.specs) {
      const value = params[spec.name];
      if (value === undefined) throw new Error(`model ${model.name}: no value for parameter '${spec.name}'`);
      const shape = value.shape;
      if (shape.length !== spec.shape.length || shape.some((d, i) => d !== spec.shape[i])) {
        throw new Error(`model ${model.name}: parameter '${spec.name}' has shape [${shape}], expected [${spec.shape}]`);
      }
      if (value instanceof tf.Tensor) {
        tensors[spec.name] = value;
      } else {
        if (value.values.length !== sizeOf(spec.shape)) {
          throw new Error(`model ${model.name}: parameter '${spec.name}' has ${value.values.length} values for shape [${spec.shape}]`);
        }
        const t = tf.tensor(value.values, [...spec.shape], 'float32');
        created.push(t);
        tensors[spec.name] = t;
      }
    }
  } catch (e) {
    tf.dispose(created);
    throw e;
  }
  return { tensors, dispose: () => tf.dispose(created) };
}

/** The input tensor of a batch in the model's layout: [size, ...model.inputShape] (flattened for an mlp). */
export function inputTensor(model: Model, batch: Batch): tf.Tensor {
  const perExample = sizeOf(model.inputShape);
  const image = [batch.height, batch.width, batch.channels];
  const layoutFits = model.inputShape.length === 3 ? image.every((d, i) => d === model.inputShape[i]) : sizeOf(image) === perExample;
  if (!layoutFits || batch.x.length !== batch.size * perExample) {
    throw new Error(
      `batch (epoch ${batch.epoch}, index ${batch.index}): ${batch.size} examples of ` +
        `${batch.height}×${batch.width}×${batch.channels} in ${batch.x.length} values do not fit model ` +
        `${model.name}'s input [${model.inputShape}]`,
    );
  }
  return tf.tensor(batch.x, [batch.size, ...model.inputShape], 'float32');
}
