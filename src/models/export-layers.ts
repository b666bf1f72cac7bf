import * as tf from '@tensorflow/tfjs';
import type { ArchNode, Architecture } from './architecture';
import { BN_MOMENTUM, paramSpecs, weightName } from './build';
import type { Model } from './model';

/** The Layers model's name for a cigl layer (`s1b1.conv1` → `s1b1_conv1`; Keras names have no dots). */
const layerName = (name: string, suffix = ''): string => `${name.replace(/\./g, '_')}${suffix}`;

/**
 * One tensor of the exported Layers model (model.json's weights manifest, weights.bin, model.safetensors)
 * and the cigl tensor it holds.
 */
export interface LayersTensor {
  /** The Layers weight name, e.g. `conv1/kernel`, `conv1_bn/moving_mean`, `fc/bias`. */
  readonly layersName: string;
  /**
   * cigl's name: a parameter (`conv1.w`, `conv1.gamma`, `conv1.beta`, `fc.w`, `fc.b`) or a BatchNorm
   * running statistic (`mean/conv1`, `variance/conv1`, as in readBatchNorm).
   */
  readonly ciglName: string;
  /** HWIO for conv kernels, [in, out] for dense kernels, [channels] or [units] for the rest. */
  readonly shape: readonly number[];
}

/**
 * Every tensor of an architecture's Layers model, parameters in forward order, then the BatchNorm
 * statistics. The one place the two naming schemes meet: conv `X.w` → `X'/kernel`, dense `X.w` →
 * `X'/kernel` and `X.b` → `X'/bias`, BatchNorm `X.gamma`/`X.beta` → `X'_bn/gamma`/`X'_bn/beta` and its
 * statistics → `X'_bn/moving_mean`/`X'_bn/moving_variance`, where X' is X with '.' replaced by '_'.
 */
export function layersTensors(arch: Architecture): LayersTensor[] {
  const tensors: LayersTensor[] = [];
  const stats: LayersTensor[] = [];
  for (const spec of paramSpecs(arch)) {
    const dot = spec.name.lastIndexOf('.');
    const layer = spec.name.slice(0, dot);
    const name = ((): string => {
      switch (spec.kind) {
        case 'conv':
        case 'dense':
          return `${layerName(layer)}/kernel`;
        case 'bias':
          return `${layerName(layer)}/bias`;
        case 'bnGamma':
          stats.push(
            { layersName: `${layerName(layer, '_bn')}/moving_mean`, ciglName: `mean/${layer}`, shape: spec.shape },
            { layersName: `${layerName(layer, '_bn')}/moving_variance`, ciglName: `variance/${layer}`, shape: spec.shape },
          );
          return `${layerName(layer, '_bn')}/gamma`;
        case 'bnBeta':
          return `${layerName(layer, '_bn')}/beta`;
      }
    })();
    tensors.push({ layersName: name, ciglName: spec.name, shape: spec.shape });
  }
  return [...tensors, ...stats];
}

/** Named values (parameters by spec name, BatchNorm statistics as `mean/<layer>`, `variance/<layer>`). */
type Values = Readonly<Record<string, { readonly shape: readonly number[]; readonly values: Float32Array }>>;

/**
 * The tensors of an architecture's Layers model with their values, named as in the Layers model
 * (layersTensors), from cigl's parameters and BatchNorm statistics; shapes are checked.
 */
export function layersWeights(arch: Architecture, params: Values, batchNorm: Values): { name: string; shape: readonly number[]; values: Float32Array }[] {
  return layersTensors(arch).map((t) => {
    const value = params[t.ciglName] ?? batchNorm[t.ciglName];
    if (!value) throw new Error(`model ${arch.name}: no value for '${t.ciglName}' (Layers weight ${t.layersName})`);
    if (value.shape.length !== t.shape.length || value.shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(`model ${arch.name}: '${t.ciglName}' has shape [${value.shape}], expected [${t.shape}]`);
    }
    return { name: t.layersName, shape: t.shape, values: value.values };
  });
}

/**
 * The standard tfjs Layers model equivalent to a cigl Model, so that a trained (sparse, averaged) model
 * loads anywhere with plain `tf.loadLayersModel` and predicts in inference mode.
 *
 * `values` overrides parameters by spec name (e.g. averaged weights with the masks baked in as zeros);
 * anything not given is read from the model's variables. BatchNorm running statistics come from the
 * model. The caller owns (and must dispose) the returned model.
 */
export function toLayersModel(model: Model, values: Readonly<Record<string, Float32Array>> = {}): tf.LayersModel {
  const weightsOf = (name: string): tf.Tensor => {
    const variable = model.params.get(name);
    if (!variable) throw new Error(`toLayersModel: model ${model.name} has no parameter '${name}'`);
    const override = values[name];
    return override ? tf.tensor(override, variable.shape) : variable.clone();
  };
  const assignments: { layer: tf.layers.Layer; weights: () => tf.Tensor[] }[] = [];

  const build = (nodes: readonly ArchNode[], input: tf.SymbolicTensor): tf.SymbolicTensor =>
    nodes.reduce((h, node) => apply(node, h), input);
  const apply = (node: ArchNode, h: tf.SymbolicTensor): tf.SymbolicTensor => {
    switch (node.op) {
      case 'convBn': {
        const conv = tf.layers.conv2d({ name: layerName(node.name), filters: node.filters, kernelSize: node.kernel, strides: node.stride, padding: 'same', useBias: false });
        const stats = model.bnStats.get(node.name)!;
        const bn = tf.layers.batchNormalization({ name: layerName(node.name, '_bn'), axis: -1, momentum: 1 - BN_MOMENTUM, epsilon: stats.epsilon });
        assignments.push({ layer: conv, weights: () => [weightsOf(weightName(node.name))] });
        assignments.push({
          layer: bn,
          weights: () => [weightsOf(`${node.name}.gamma`), weightsOf(`${node.name}.beta`), stats.mean.clone(), stats.variance.clone()],
        });
        const y = bn.apply(conv.apply(h)) as tf.SymbolicTensor;
        return node.relu ? (tf.layers.reLU({ name: layerName(node.name, '_relu') }).apply(y) as tf.SymbolicTensor) : y;
      }
      case 'maxPool2':
        return tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid' }).apply(h) as tf.SymbolicTensor;
      case 'flatten':
        // Already flat (mlp on vector inputs): Keras' Flatten refuses rank-2 inputs.
        return h.shape.length <= 2 ? h : (tf.layers.flatten().apply(h) as tf.SymbolicTensor);
      case 'globalAvgPool':
        return tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
      case 'dense': {
        const layer = tf.layers.dense({ name: layerName(node.name), units: node.units, activation: node.relu ? 'relu' : 'linear' });
        assignments.push({ layer, weights: () => [weightsOf(weightName(node.name)), weightsOf(`${node.name}.b`)] });
        return layer.apply(h) as tf.SymbolicTensor;
      }
      case 'residual': {
        const body = build(node.body, h);
        const shortcut = node.shortcut.length ? build(node.shortcut, h) : h;
        const sum = tf.layers.add({ name: layerName(node.name, '_add') }).apply([body, shortcut]) as tf.SymbolicTensor;
        return tf.layers.reLU({ name: layerName(node.name, '_relu') }).apply(sum) as tf.SymbolicTensor;
      }
    }
  };

  const input = tf.input({ shape: [...model.inputShape], name: 'input' });
  const output = build(model.architecture.nodes, input);
  const layersModel = tf.model({ inputs: input, outputs: output, name: model.name.replace(/[^A-Za-z0-9_]/g, '_') });
  for (const { layer, weights } of assignments) {
    const ws = weights();
    layer.setWeights(ws);
    tf.dispose(ws);
  }
  return layersModel;
}
