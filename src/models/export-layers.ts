import * as tf from '@tensorflow/tfjs';
import type { ArchNode } from './architecture';
import { BN_MOMENTUM, weightName } from './build';
import type { Model } from './model';

/**
 * The standard tfjs Layers model equivalent to a cigl Model, so that a trained (sparse, averaged) model
 * loads anywhere with plain `tf.loadLayersModel` and predicts in inference mode.
 *
 * `values` overrides parameters by spec name (e.g. averaged weights with the masks baked in as zeros);
 * anything not given is read from the model's variables. BatchNorm running statistics come from the
 * model. The caller owns (and must dispose) the returned model.
 */
export function toLayersModel(model: Model, values: Readonly<Record<string, Float32Array>> = {}): tf.LayersModel {
  const layerName = (name: string, suffix = ''): string => `${name.replace(/\./g, '_')}${suffix}`;
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
