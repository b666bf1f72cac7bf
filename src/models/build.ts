import * as tf from '@tensorflow/tfjs';
import type { ConvBnCall, Ops, ResidualBlockCall, RunningStats } from '../compute/ops';
import { Rng } from '../util/rng';
import type { ArchNode, Architecture } from './architecture';

type ConvBnNode = Extract<ArchNode, { op: 'convBn' }>;
import type { Model, ParamSpec } from './model';
import { architecture, type ArchOptions, type ModelName } from './zoo';

/** BatchNorm defaults, PyTorch's (the peer's): momentum 0.1 on new statistics, epsilon 1e-5. */
export const BN_MOMENTUM = 0.1;
export const BN_EPSILON = 1e-5;

/** Parameter names: `${layer}.w` (conv/dense weight), `${layer}.b`, `${layer}.gamma`, `${layer}.beta`. */
export const weightName = (layer: string): string => `${layer}.w`;

export interface CreateModelOptions extends ArchOptions {
  /** Seed of the initial weights (He-normal, as the peer; biases 0, BatchNorm γ = 1, β = 0). */
  readonly seed: number;
}

export function createModel(name: ModelName, opts: CreateModelOptions): Model {
  return buildModel(architecture(name, opts), opts.seed);
}

/** Builds parameters and the forward pass of an architecture. */
export function buildModel(arch: Architecture, seed: number): Model {
  const specs = paramSpecs(arch);
  const rng = Rng.derive(seed, 'init', arch.name);
  const params = new Map<string, tf.Variable>();
  for (const spec of specs) {
    const initial = initialValue(spec, rng);
    params.set(spec.name, tf.variable(initial, true));
    initial.dispose();
  }
  const bnStats = new Map<string, RunningStats>();
  for (const spec of specs) {
    if (spec.kind !== 'bnGamma') continue;
    const layer = spec.name.slice(0, -'.gamma'.length);
    const channels = spec.shape[0];
    bnStats.set(layer, {
      mean: tf.tidy(() => tf.variable(tf.zeros([channels]), false)),
      variance: tf.tidy(() => tf.variable(tf.ones([channels]), false)),
      momentum: BN_MOMENTUM,
      epsilon: BN_EPSILON,
    });
  }

  const apply = (p: Readonly<Record<string, tf.Tensor>>, x: tf.Tensor, training: boolean, ops: Ops, active?: Readonly<Record<string, tf.Tensor>>): tf.Tensor2D => {
    const convBnCall = (node: ConvBnNode): ConvBnCall => {
      const filter = weightName(node.name);
      return {
        filter: p[filter] as tf.Tensor4D,
        bn: { gamma: p[`${node.name}.gamma`] as tf.Tensor1D, beta: p[`${node.name}.beta`] as tf.Tensor1D, stats: bnStats.get(node.name)! },
        opts: { stride: node.stride, padding: 'same', relu: node.relu, training, active: active?.[filter] as tf.Tensor4D | undefined, layer: node.name },
      };
    };
    // An identity block whose body is one convBn pair (second ReLU off): the path may fuse the join into the pair.
    const identityPair = (node: ArchNode): readonly [ConvBnCall, ConvBnCall] | undefined => {
      if (node.op !== 'residual' || node.shortcut.length || node.body.length !== 2) return undefined;
      const [first, second] = node.body;
      return first.op === 'convBn' && second.op === 'convBn' && !second.relu ? [convBnCall(first), convBnCall(second)] : undefined;
    };
    // A residual block whose body is a convBn pair (second ReLU off) and whose shortcut is the identity or one convBn without ReLU.
    const residualBlock = (node: ArchNode): ResidualBlockCall | undefined => {
      const pair = identityPair(node);
      if (pair || node.op !== 'residual' || node.body.length !== 2 || node.shortcut.length !== 1) return pair;
      const [first, second] = node.body;
      const [shortcut] = node.shortcut;
      if (first.op !== 'convBn' || second.op !== 'convBn' || shortcut.op !== 'convBn' || second.relu || shortcut.relu) return undefined;
      return [convBnCall(first), convBnCall(second), convBnCall(shortcut)];
    };
    // Consecutive residual blocks of that form go to ops.residualBlocks together, and consecutive convBn
    // nodes to ops.convBnPair two at a time (with a max pool that follows), where the compute path has them.
    const run = (nodes: readonly ArchNode[], input: tf.Tensor): tf.Tensor => {
      let h = input;
      for (let i = 0; i < nodes.length; i++) {
        const node = nodes[i];
        const next = nodes[i + 1];
        // A convBn right before the blocks (a ResNet's stem) goes with them as their head.
        const head = node.op === 'convBn' && next && residualBlock(next) ? convBnCall(node) : undefined;
        if (ops.residualBlocks && (residualBlock(node) || head)) {
          if (head) i++;
          const blocks: ResidualBlockCall[] = [];
          for (let block; i < nodes.length && (block = residualBlock(nodes[i])); i++) blocks.push(block);
          i--;
          h = ops.residualBlocks(h as tf.Tensor4D, blocks, head);
        } else if (ops.convBnPair && node.op === 'convBn' && next?.op === 'convBn') {
          // A max pool right after the pair goes with it (a cnn's conv-conv-pool stage).
          const pooled = nodes[i + 2]?.op === 'maxPool2';
          h = ops.convBnPair(h as tf.Tensor4D, convBnCall(node), convBnCall(next), pooled ? 'maxPool2' : undefined);
          i += pooled ? 2 : 1;
        } else {
          h = forward(node, h);
        }
      }
      return h;
    };
    const forward = (node: ArchNode, h: tf.Tensor): tf.Tensor => {
      switch (node.op) {
        case 'convBn': {
          const { filter, bn, opts } = convBnCall(node);
          return ops.convBn(h as tf.Tensor4D, filter, bn, opts);
        }
        case 'maxPool2':
          return ops.maxPool2(h as tf.Tensor4D);
        case 'flatten':
          return tf.reshape(h, [h.shape[0], h.size / h.shape[0]]);
        case 'globalAvgPool':
          return ops.globalAvgPool(h as tf.Tensor4D);
        case 'dense':
          return ops.dense(h as tf.Tensor2D, p[weightName(node.name)] as tf.Tensor2D, p[`${node.name}.b`] as tf.Tensor1D, node.relu);
        case 'residual': {
          const pair = identityPair(node);
          if (ops.convBnPair && pair) return ops.convBnPair(h as tf.Tensor4D, pair[0], pair[1], 'residual');
          const body = run(node.body, h);
          const shortcut = node.shortcut.length ? run(node.shortcut, h) : h;
          return ops.addRelu(body as tf.Tensor4D, shortcut as tf.Tensor4D);
        }
      }
    };
    return run(arch.nodes, x) as tf.Tensor2D;
  };

  return {
    name: arch.name,
    inputShape: arch.inputShape,
    numClasses: arch.numClasses,
    architecture: arch,
    specs,
    params,
    bnStats,
    apply,
    dispose() {
      for (const v of params.values()) v.dispose();
      for (const s of bnStats.values()) {
        s.mean.dispose();
        s.variance.dispose();
      }
    },
  };
}

/** Walks the architecture and lists every trainable parameter in forward order. */
export function paramSpecs(arch: Architecture): ParamSpec[] {
  const specs: ParamSpec[] = [];
  const walk = (nodes: readonly ArchNode[], shape: readonly number[]): readonly number[] => {
    for (const node of nodes) shape = visit(node, shape);
    return shape;
  };
  const visit = (node: ArchNode, shape: readonly number[]): readonly number[] => {
    switch (node.op) {
      case 'convBn': {
        const [h, w, c] = shape;
        specs.push({ name: weightName(node.name), shape: [node.kernel, node.kernel, c, node.filters], kind: 'conv', maskable: true });
        specs.push({ name: `${node.name}.gamma`, shape: [node.filters], kind: 'bnGamma', maskable: false });
        specs.push({ name: `${node.name}.beta`, shape: [node.filters], kind: 'bnBeta', maskable: false });
        return [Math.ceil(h / node.stride), Math.ceil(w / node.stride), node.filters];
      }
      case 'maxPool2':
        return [Math.floor(shape[0] / 2), Math.floor(shape[1] / 2), shape[2]];
      case 'flatten':
      case 'globalAvgPool':
        return node.op === 'flatten' ? [shape.reduce((a, b) => a * b, 1)] : [shape[2]];
      case 'dense':
        specs.push({ name: weightName(node.name), shape: [shape[0], node.units], kind: 'dense', maskable: node.maskable });
        specs.push({ name: `${node.name}.b`, shape: [node.units], kind: 'bias', maskable: false });
        return [node.units];
      case 'residual': {
        const out = walk(node.body, shape);
        walk(node.shortcut, shape);
        return out;
      }
    }
  };
  walk(arch.nodes, arch.inputShape);
  return specs;
}

function initialValue(spec: ParamSpec, rng: Rng): tf.Tensor {
  switch (spec.kind) {
    case 'conv':
    case 'dense': {
      // He-normal over the fan-in, as the peer: randn · sqrt(2 / fan_in).
      const fanIn = spec.shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const std = Math.sqrt(2 / fanIn);
      const values = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < values.length; i++) values[i] = rng.nextNormal() * std;
      return tf.tensor(values, spec.shape as number[]);
    }
    case 'bnGamma':
      return tf.ones(spec.shape as number[]);
    case 'bias':
    case 'bnBeta':
      return tf.zeros(spec.shape as number[]);
  }
}
