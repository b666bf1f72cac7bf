import * as tf from '@tensorflow/tfjs';
import { requireNativeAddon } from './native-addon';
import { convGeometry, KERNELS, outputShape, registerNativeKernels, type SparseConvBnPairAttrs } from './native-kernels';
import { IDENTITY_BLOCK_INPUTS, MAX_RESIDUAL_BLOCKS, SHORTCUT_INPUTS, shortcutTap, type SparseResidualBlocksAttrs } from './residual-blocks-kernels';
import { activeFraction, type ConvRole, prefersSparse, recordDecision } from './sparse-selection';
import type { ConvBnCall, ConvBnOptions, Ops, PairTail, ResidualBlockCall, RunningStats } from './ops';

/**
 * Ops on the native addon (oneDNN convolutions, fused BatchNorm+ReLU, pooling, dense, loss) for the
 * tfjs 'cpu' backend. Numerically interchangeable with stockOps (tested to 1e-4 relative); running
 * BatchNorm statistics follow the same update rule, bitwise (stock-ops' updateRunningStats; see
 * updateRunningStatsDirect).
 *
 * The addon is loaded and its kernels registered on first use; using these ops without the addon
 * built throws an error that says why (selectBackend checks availability up front).
 */
export const nativeOps: Ops = {
  name: 'native',

  convBn(x, filter, bn, opts) {
    ensureRegistered();
    return convBnOn(x, { filter, bn, opts }, sparsePattern(x.shape, filter, opts));
  },

  convBnPair(x, first, second, tail) {
    ensureRegistered();
    return convBnPairOn(x, first, second, tail, pairPatterns(x.shape, first, second));
  },

  residualBlocks(x, blocks, head) {
    ensureRegistered();
    // In evaluation (no gradient recorded) a run keeps its activations in lanes too, on the forward-only kernel.
    const evaluation = blocks.every((block) => block.every((call) => !call?.opts.training)) && !head?.opts.training && !recordingGradients();
    let h = x;
    const headOut = head && outputShape(convGeometry(x.shape, head.filter.shape, { stride: head.opts.stride, padding: head.opts.padding }));
    const plans: PlannedBlock[] = [];
    for (const block of blocks) plans.push(planBlock(plans.length ? plans[plans.length - 1].outShape : headOut ?? x.shape, block, evaluation));
    const plannedHead = head ? planHead(x.shape, head, headOut!, plans[0], evaluation) : undefined;
    if (head && !plannedHead?.fused) h = convBnOn(x, head, plannedHead?.active);
    // Runs of blocks that all fuse go through one kernel; any other block runs on its own. A fused head
    // joins the first run, whatever its length.
    for (let i = 0; i < plans.length; ) {
      let end = i;
      while (end < plans.length && end - i < MAX_RESIDUAL_BLOCKS && plans[end].fused) end++;
      const withHead = i === 0 && plannedHead?.fused ? plannedHead : undefined;
      // An identity block alone is the pair kernel's residual mode (the same arithmetic).
      if (end - i >= 2 || (end - i === 1 && (plans[i].shortcut || withHead))) {
        h = residualBlocksOn(h, plans.slice(i, end), evaluation, withHead);
        i = end;
        continue;
      }
      const { call: [first, second, shortcut], patterns, shortcut: active } = plans[i];
      h = shortcut
        ? nativeOps.addRelu(convBnPairOn(h, first, second, undefined, patterns), convBnOn(h, shortcut, active))
        : convBnPairOn(h, first, second, 'residual', patterns);
      i++;
    }
    return h;
  },

  addRelu(a, b) {
    ensureRegistered();
    return run(KERNELS.addRelu, { a, b }) as tf.Tensor4D;
  },

  maxPool2(x) {
    ensureRegistered();
    return run(KERNELS.maxPool2, { x }) as tf.Tensor4D;
  },

  globalAvgPool(x) {
    ensureRegistered();
    return run(KERNELS.globalAvgPool, { x }) as tf.Tensor2D;
  },

  dense(x, w, b, relu) {
    ensureRegistered();
    return run(KERNELS.dense, { x, w, b }, { relu }) as tf.Tensor2D;
  },

  crossEntropy(logits, labels) {
    ensureRegistered();
    return run(KERNELS.softmaxCrossEntropy, { logits, labels }) as tf.Scalar;
  },
};

type Patterns = readonly [tf.Tensor4D | undefined, tf.Tensor4D | undefined];

/** The pair's two sparse patterns (sparsePattern of each layer; decisions recorded once). */
function pairPatterns(xShape: readonly number[], first: ConvBnCall, second: ConvBnCall): Patterns {
  const g1 = convGeometry(xShape, first.filter.shape, { stride: first.opts.stride, padding: first.opts.padding });
  const role: ConvRole = first.opts.training && second.opts.training ? 'pairHead' : 'alone';
  return [sparsePattern(xShape, first.filter, first.opts, role), sparsePattern(outputShape(g1), second.filter, second.opts)];
}

/** Whether a pair runs on the fused pair kernel: both layers sparse, in training, with one padding. */
function fusesAsPair(first: ConvBnCall, second: ConvBnCall, [a1, a2]: Patterns): boolean {
  return a1 !== undefined && a2 !== undefined && first.opts.training && second.opts.training && first.opts.padding === second.opts.padding;
}

/** A block with its layers' paths decided: patterns, whether it joins a run of the residual-blocks kernels, its output shape. */
interface PlannedBlock {
  readonly call: ResidualBlockCall;
  readonly patterns: Patterns;
  /** The shortcut's pattern where it runs on the sparse kernels. */
  readonly shortcut?: tf.Tensor4D;
  readonly fused: boolean;
  /** The first layer's output shape (its BatchNorm's) and the block's. */
  readonly midShape: readonly number[];
  readonly outShape: readonly number[];
}

/**
 * Decides one block's paths, recording each layer's decision once. A block fuses when both body layers
 * run sparse, all in training or all in evaluation (the forward-only kernel), with one padding and odd
 * kernels, the second at stride 1; an identity block also keeps its input's shape; a projection block's
 * shortcut must sit at a tap of the first layer's window (shortcutTap), and then runs sparse too, at any
 * density (sparse-selection's 'blockShortcut').
 */
function planBlock(xShape: readonly number[], call: ResidualBlockCall, evaluation: boolean): PlannedBlock {
  const [first, second, shortcut] = call;
  const patterns = pairPatterns(xShape, first, second);
  const g1 = convGeometry(xShape, first.filter.shape, { stride: first.opts.stride, padding: first.opts.padding });
  const midShape = outputShape(g1);
  const outShape = outputShape(convGeometry(midShape, second.filter.shape, { stride: second.opts.stride, padding: second.opts.padding }));
  const pairFuses = evaluation ? patterns[0] !== undefined && patterns[1] !== undefined && first.opts.padding === second.opts.padding : fusesAsPair(first, second, patterns);
  const body = pairFuses && second.opts.stride === 1 && !second.opts.relu && first.filter.shape[0] % 2 === 1 && second.filter.shape[0] % 2 === 1;
  if (!shortcut) return { call, patterns, fused: body && first.opts.stride === 1 && tf.util.arraysEqual(outShape, [...xShape]), midShape, outShape };
  const fits = body && shortcut.opts.training === !evaluation && !shortcut.opts.relu && shortcut.opts.padding === first.opts.padding &&
    shortcutTap(xShape, first.filter.shape, shortcut.filter.shape, first.opts.stride, shortcut.opts.stride, first.opts.padding) !== undefined;
  const active = sparsePattern(xShape, shortcut.filter, shortcut.opts, fits ? 'blockShortcut' : 'alone');
  return { call, patterns, shortcut: active, fused: fits && active !== undefined, midShape, outShape };
}

/** A head (the convBn before a run of blocks) with its path decided: it fuses into the run when the first block fuses in training. */
interface PlannedHead {
  readonly call: ConvBnCall;
  readonly active?: tf.Tensor4D;
  readonly fused: boolean;
  readonly outShape: readonly number[];
}

/** Decides the head's path (recording its decision) once the first block's is known. */
function planHead(xShape: readonly number[], head: ConvBnCall, outShape: readonly number[], first: PlannedBlock, evaluation: boolean): PlannedHead {
  const fits = first.fused && head.opts.training === !evaluation && head.opts.padding === first.call[0].opts.padding && head.filter.shape[0] % 2 === 1;
  const active = sparsePattern(xShape, head.filter, head.opts, fits ? 'blocksHead' : 'alone');
  return { call: head, active, fused: fits && active !== undefined, outShape };
}

function residualBlocksOn(x: tf.Tensor4D, blocks: readonly PlannedBlock[], evaluation: boolean, head?: PlannedHead): tf.Tensor4D {
  // Evaluation takes each layer's running mean and variance after its block's inputs (the head's after its own).
  const running = (call: ConvBnCall): tf.Tensor[] => (evaluation ? [call.bn.stats.mean, call.bn.stats.variance] : []);
  const inputs: tf.Tensor[] = [x];
  blocks.forEach(({ call: [first, second, shortcut], patterns, shortcut: activeS }) => {
    const byName: Record<(typeof IDENTITY_BLOCK_INPUTS)[number], tf.Tensor> = {
      filter1: first.filter, active1: patterns[0]!, gamma1: first.bn.gamma, beta1: first.bn.beta,
      filter2: second.filter, active2: patterns[1]!, gamma2: second.bn.gamma, beta2: second.bn.beta,
    };
    inputs.push(...IDENTITY_BLOCK_INPUTS.map((name) => byName[name]));
    if (shortcut) {
      const shortcutByName: Record<(typeof SHORTCUT_INPUTS)[number], tf.Tensor> = { filterS: shortcut.filter, activeS: activeS!, gammaS: shortcut.bn.gamma, betaS: shortcut.bn.beta };
      inputs.push(...SHORTCUT_INPUTS.map((name) => shortcutByName[name]));
    }
    inputs.push(...running(first), ...running(second), ...(shortcut ? running(shortcut) : []));
  });
  if (head) inputs.push(head.call.filter, head.active!, head.call.bn.gamma, head.call.bn.beta, ...running(head.call));
  const calls = blocks.map((b) => b.call);
  const attrs: SparseResidualBlocksAttrs = {
    padding: calls[0][0].opts.padding,
    epsilon1: calls.map(([first]) => first.bn.stats.epsilon),
    relu1: calls.map(([first]) => first.opts.relu),
    epsilon2: calls.map(([, second]) => second.bn.stats.epsilon),
    stride: calls.map(([first]) => first.opts.stride),
    projection: calls.map(([, , shortcut]) => shortcut !== undefined),
    epsilonS: calls.map(([, , shortcut]) => shortcut?.bn.stats.epsilon ?? 0),
    head: head !== undefined, headStride: head?.call.opts.stride ?? 1, headEpsilon: head?.call.bn.stats.epsilon ?? 0, headRelu: head?.call.opts.relu ?? false,
  };
  if (evaluation) return tf.engine().runKernel(KERNELS.sparseResidualBlocksInfer, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  const [z, ...stats] = tf.engine().runKernel(KERNELS.sparseResidualBlocks, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  let at = 0;
  blocks.forEach(({ call: [first, second, shortcut], midShape, outShape }) => {
    takeBatchStats(first.bn.stats, stats[at], stats[at + 1], midShape);
    takeBatchStats(second.bn.stats, stats[at + 2], stats[at + 3], outShape);
    if (shortcut) takeBatchStats(shortcut.bn.stats, stats[at + 4], stats[at + 5], outShape);
    at += shortcut ? 6 : 4;
  });
  // The head's mean and variance follow every block's statistics.
  if (head) takeBatchStats(head.call.bn.stats, stats[at], stats[at + 1], head.outShape);
  return z as tf.Tensor4D;
}

/** convBnPair with both layers' paths decided. */
function convBnPairOn(x: tf.Tensor4D, first: ConvBnCall, second: ConvBnCall, tail: PairTail | undefined, patterns: Patterns): tf.Tensor4D {
  const [a1, a2] = patterns;
  const g1 = convGeometry(x.shape, first.filter.shape, { stride: first.opts.stride, padding: first.opts.padding });
  const between = outputShape(g1);
  if (!fusesAsPair(first, second, patterns)) {
    const body = convBnOn(convBnOn(x, first, a1), second, a2);
    return tail === 'residual' ? nativeOps.addRelu(body, x) : tail === 'maxPool2' ? nativeOps.maxPool2(body) : body;
  }
  const attrs: SparseConvBnPairAttrs = {
    padding: first.opts.padding, stride1: first.opts.stride, stride2: second.opts.stride,
    epsilon1: first.bn.stats.epsilon, epsilon2: second.bn.stats.epsilon, relu1: first.opts.relu, relu2: second.opts.relu,
    residual: tail === 'residual', pool: tail === 'maxPool2',
  };
  const [z, mean1, variance1, mean2, variance2] = run(KERNELS.sparseConvBnPair, {
    x, filter1: first.filter, active1: a1!, gamma1: first.bn.gamma, beta1: first.bn.beta,
    filter2: second.filter, active2: a2!, gamma2: second.bn.gamma, beta2: second.bn.beta,
  }, attrs as unknown as tf.NamedAttrMap) as [tf.Tensor4D, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  takeBatchStats(first.bn.stats, mean1, variance1, between);
  takeBatchStats(second.bn.stats, mean2, variance2, outputShape(convGeometry(between, second.filter.shape, { stride: second.opts.stride, padding: second.opts.padding })));
  return z;
}

/**
 * The active pattern when convBn's convolution runs on the sparse kernels: one is given and
 * sparse-selection prefers them for this geometry and density; undefined for oneDNN's dense kernels.
 * In evaluation without a pattern the filter is its own (nonzero = active): a pruned weight is exactly 0
 * and adds nothing to the output, so a sparse model's inference (validation, predictions) skips its
 * pruned weights too. (Not where a gradient is recorded: a zero weight's gradient is not zero.) Every
 * decision is recorded for reports.
 */
function sparsePattern(xShape: readonly number[], filter: tf.Tensor4D, opts: ConvBnOptions, role: ConvRole = 'alone'): tf.Tensor4D | undefined {
  const active = opts.active ?? (opts.training || recordingGradients() ? undefined : filter);
  if (!active) return undefined;
  const density = densityOf(active);
  const sparse = prefersSparse(convGeometry(xShape, filter.shape, { stride: opts.stride, padding: opts.padding }), density, role);
  recordDecision({ layer: opts.layer ?? `conv ${filter.shape.join('×')} stride ${opts.stride}`, density, sparse });
  return sparse ? active : undefined;
}

/** Whether tfjs is recording operations for a gradient (inside tf.grads and the like). */
function recordingGradients(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

/** convBn with the convolution's path decided: sparse through `active`, dense without. */
function convBnOn(x: tf.Tensor4D, { filter, bn, opts }: ConvBnCall, active: tf.Tensor4D | undefined): tf.Tensor4D {
  const attrs = { stride: opts.stride, padding: opts.padding };
  const bnAttrs = { epsilon: bn.stats.epsilon, relu: opts.relu };
  if (active && !opts.training && !recordingGradients()) {
    // Sparse convolution and evaluation-mode BatchNorm in one kernel (no gradient kept).
    const { mean, variance } = bn.stats;
    return run(KERNELS.sparseConvBnInfer, { x, filter, active, gamma: bn.gamma, beta: bn.beta, mean, variance }, { ...attrs, ...bnAttrs }) as tf.Tensor4D;
  }
  if (active && opts.training) {
    // Sparse convolution and training-mode BatchNorm in one kernel (native/src/sparse_conv.h).
    const [z, mean, variance] = run(KERNELS.sparseConvBn, { x, filter, active, gamma: bn.gamma, beta: bn.beta }, { ...attrs, ...bnAttrs }) as [tf.Tensor4D, tf.Tensor, tf.Tensor];
    takeBatchStats(bn.stats, mean, variance, z);
    return z;
  }
  const y = (active ? run(KERNELS.sparseConv2d, { x, filter, active }, attrs) : run(KERNELS.conv2d, { x, filter }, attrs)) as tf.Tensor4D;
  let z: tf.Tensor4D;
  if (opts.training) {
    const [out, mean, variance] = run(KERNELS.batchNormTrain, { x: y, gamma: bn.gamma, beta: bn.beta }, bnAttrs) as tf.Tensor[];
    takeBatchStats(bn.stats, mean, variance, y);
    z = out as tf.Tensor4D;
  } else {
    const { mean, variance } = bn.stats;
    z = run(KERNELS.batchNormInfer, { x: y, gamma: bn.gamma, beta: bn.beta, mean, variance }, bnAttrs) as tf.Tensor4D;
  }
  // The gradient tape keeps its own reference; dropping ours frees the conv output early when no
  // gradient is being recorded.
  y.dispose();
  return z;
}

/**
 * Folds a training-mode BatchNorm's batch statistics into the running ones and disposes them; `normalised`
 * is the tensor (or NHWC shape) they were taken over, for the count.
 */
function takeBatchStats(stats: RunningStats, mean: tf.Tensor, variance: tf.Tensor, normalised: tf.Tensor | readonly number[]): void {
  const shape = Array.isArray(normalised) ? normalised : (normalised as tf.Tensor).shape;
  updateRunningStatsDirect(stats, mean, variance, shape[0] * shape[1] * shape[2]);
  tf.dispose([mean, variance]);
}

/**
 * stock-ops' updateRunningStats computed on the cpu backend's arrays instead of with tfjs ops. Why: the
 * ops run inside the training step's gradient scope, where tfjs records every kernel and clones its
 * inputs for a backward pass that never comes: 7 kernels and ~14 clones per BatchNorm layer and step,
 * ~300 kernel launches of pure overhead for resnet20. Each float32 operation is rounded as tfjs rounds
 * it (Math.fround after every multiply and add, scalars rounded to float32 first), so the running
 * statistics are bitwise those of the op chain (tested in test/compute/native-ops.test.ts).
 */
export function updateRunningStatsDirect(stats: RunningStats, batchMean: tf.Tensor, batchVariance: tf.Tensor, count: number): void {
  const f = Math.fround;
  const keep = f(1 - stats.momentum);
  const take = f(stats.momentum);
  const correction = f(count / Math.max(1, count - 1));
  const next = (running: tf.Variable, batch: ArrayLike<number>, scale: number): tf.Tensor => {
    const old = cpuValues(running);
    const out = new Float32Array(old.length);
    for (let i = 0; i < out.length; i++) {
      const b = scale === 1 ? batch[i] : f(batch[i] * scale);
      out[i] = f(f(old[i] * keep) + f(b * take));
    }
    return tf.tensor(out, running.shape);
  };
  const mean = next(stats.mean, cpuValues(batchMean), 1);
  const variance = next(stats.variance, cpuValues(batchVariance), correction);
  stats.mean.assign(mean);
  stats.variance.assign(variance);
  tf.dispose([mean, variance]);
}

/**
 * The fraction of nonzero entries of a pattern, counted once per tensor data: the trainer's masks live
 * for ΔT steps and the benchmarks' for the whole run, so recounting every layer at every step (~0.7 ms
 * of a resnet20 step) bought nothing. Tensor data is never changed in place (a new mask is new data).
 */
const densities = new WeakMap<object, number>();

function densityOf(active: tf.Tensor): number {
  let density = densities.get(active.dataId);
  if (density === undefined) densities.set(active.dataId, (density = activeFraction(cpuValues(active))));
  return density;
}

/** A tensor's values on the cpu backend without a read (a read would mark a pooled array as escaped). */
function cpuValues(t: tf.Tensor): ArrayLike<number> {
  const values = (tf.backend() as unknown as { data: { get(id: object): { values?: unknown } } }).data.get(t.dataId)?.values;
  return values instanceof Float32Array ? values : t.dataSync();
}

let registered = false;

function ensureRegistered(): void {
  if (registered) return;
  registerNativeKernels(requireNativeAddon());
  registered = true;
}

function run(kernel: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor | tf.Tensor[] {
  return tf.engine().runKernel(kernel, inputs, attrs);
}
