import * as tf from '@tensorflow/tfjs';
import type { Model } from '../models/model';
import type { NamedArray, NamedArrays } from '../util/named-arrays';

/**
 * BatchNorm running statistics as plain arrays (`mean/<layer>`, `variance/<layer>`), so that a model
 * candidate (before / after averaging) carries the statistics it must be evaluated with.
 */
export function readBatchNorm(model: Model): NamedArrays {
  const out: Record<string, NamedArray> = {};
  for (const [layer, stats] of model.bnStats) {
    out[`mean/${layer}`] = { shape: stats.mean.shape, values: Float32Array.from(stats.mean.dataSync()) };
    out[`variance/${layer}`] = { shape: stats.variance.shape, values: Float32Array.from(stats.variance.dataSync()) };
  }
  return out;
}

export function loadBatchNorm(model: Model, values: NamedArrays): void {
  for (const [layer, stats] of model.bnStats) {
    for (const [key, variable] of [[`mean/${layer}`, stats.mean], [`variance/${layer}`, stats.variance]] as const) {
      const found = values[key];
      if (!found) throw new Error(`BatchNorm statistics: no '${key}' for model ${model.name}`);
      tf.tidy(() => variable.assign(tf.tensor(found.values, variable.shape)));
    }
  }
}
