import * as tf from '@tensorflow/tfjs';
import { bufferPool } from './buffer-pool';
import { checkPattern, convGeometry, cpuBackend, f32, gradLanes, inputGradientOrder, KERNELS, keepLanes, lanesOf, once, outputShape, type PairLanes, size, wrap } from './kernel-support';
import type { GradientSumsTarget, NativeAddon, PendingLanes } from './native-addon';

/**
 * Where a 1×1 shortcut's weights sit inside the first layer's kernel window when the shortcut reads the
 * same input with the same stride: tap (th, tw) of a kh×kw filter at the first layer's padding reads the
 * pixel the 1×1 convolution reads at its own padding, for every output position. Undefined when no tap
 * does (other strides, or output sizes that differ, as 'valid' padding gives).
 */
export function shortcutTap(xShape: readonly number[], filter1Shape: readonly number[], shortcutShape: readonly number[], stride: number,
  shortcutStride: number, padding: 'same' | 'valid'): [number, number] | undefined {
  if (shortcutShape[0] !== 1 || shortcutShape[1] !== 1 || stride !== shortcutStride || shortcutShape[2] !== filter1Shape[2]) return undefined;
  const g1 = convGeometry(xShape, [filter1Shape[0], filter1Shape[1], filter1Shape[2], shortcutShape[3]], { stride, padding });
  const gs = convGeometry(xShape, shortcutShape, { stride, padding });
  if (g1[9] !== gs[9] || g1[10] !== gs[10]) return undefined;
  const th = g1[11] - gs[11];
  const tw = g1[12] - gs[12];
  return th >= 0 && th < filter1Shape[0] && tw >= 0 && tw < filter1Shape[1] ? [th, tw] : undefined;
}

/** A 1×1 filter [1, 1, in, out] as a kh×kw one that is 0 except at tap (th, tw) (HWIO). */
function embedAtTap(values: Float32Array, kw: number, [th, tw]: readonly [number, number], out: Float32Array): Float32Array {
  out.fill(0);
  out.set(values, (th * kw + tw) * values.length);
  return out;
}

export interface SparseResidualBlocksAttrs {
  padding: 'same' | 'valid';
  /** Per block: the first layer's BatchNorm epsilon and ReLU, the second layer's epsilon. */
  epsilon1: number[];
  relu1: boolean[];
  epsilon2: number[];
  /** Per block: the first layer's stride (the shortcut's too); 1 for an identity block. */
  stride: number[];
  /** Per block: whether it has a 1×1 shortcut with BatchNorm (a projection block; else the identity). */
  projection: boolean[];
  /** Per block: the shortcut's BatchNorm epsilon (unused for identity blocks). */
  epsilonS: number[];
  /**
   * A convolution + BatchNorm (+ ReLU) before the first block (a ResNet's stem): its inputs follow the
   * blocks' (HEAD_INPUTS), then (evaluation) its running mean and variance; in training its batch mean and
   * variance follow the blocks' statistics.
   */
  head: boolean;
  headStride: number;
  headEpsilon: number;
  headRelu: boolean;
}

/** Each block's inputs of the residual-blocks kernel, in order; the kernel's inputs are [x, block 0's, block 1's, …]. */
export const IDENTITY_BLOCK_INPUTS = ['filter1', 'active1', 'gamma1', 'beta1', 'filter2', 'active2', 'gamma2', 'beta2'] as const;
/** A projection block's further inputs, after its IDENTITY_BLOCK_INPUTS. */
export const SHORTCUT_INPUTS = ['filterS', 'activeS', 'gammaS', 'betaS'] as const;
/** The head's inputs, after every block's. */
export const HEAD_INPUTS = ['filterH', 'activeH', 'gammaH', 'betaH'] as const;
type BlockInput = (typeof IDENTITY_BLOCK_INPUTS)[number] | (typeof SHORTCUT_INPUTS)[number];
type HeadInput = (typeof HEAD_INPUTS)[number];
/** The most blocks one residual-blocks kernel takes (its gradient saves a fixed list of outputs). */
export const MAX_RESIDUAL_BLOCKS = 64;

/** A block's convolution geometries; a projection block's shortcut as the first layer's geometry with its weights at `tap`. */
interface BlockGeometry {
  readonly g1: number[];
  readonly g2: number[];
  readonly shortcut?: { readonly gS: number[]; readonly tap: readonly [number, number]; readonly embeddedSize: number };
}

/**
 * Each block's geometries, after checking its patterns against its filters, that an identity block keeps
 * its input's shape and that a projection block's shortcut fits the first layer's window and output;
 * `kernel` names the caller in errors.
 */
function residualBlockGeometries(kernel: string, xShape: readonly number[], a: SparseResidualBlocksAttrs,
  blocks: number, input: (name: BlockInput, block: number) => tf.TensorInfo): BlockGeometry[] {
  let shape = [...xShape];
  return Array.from({ length: blocks }, (_, i) => {
    const [filter1, filter2] = [input('filter1', i), input('filter2', i)];
    checkPattern(filter1, input('active1', i), `${kernel}, block ${i} (first layer)`);
    checkPattern(filter2, input('active2', i), `${kernel}, block ${i} (second layer)`);
    const stride = a.stride[i];
    const g1 = convGeometry(shape, filter1.shape, { stride, padding: a.padding });
    const g2 = convGeometry(outputShape(g1), filter2.shape, { stride: 1, padding: a.padding });
    const outShape = outputShape(g2);
    let shortcut: BlockGeometry['shortcut'];
    if (a.projection[i]) {
      const filterS = input('filterS', i);
      checkPattern(filterS, input('activeS', i), `${kernel}, block ${i} (shortcut)`);
      const tap = shortcutTap(shape, filter1.shape, filterS.shape, stride, stride, a.padding);
      if (!tap) throw new Error(`${kernel}: block ${i}'s shortcut ${filterS.shape} does not fit its first layer's window ${filter1.shape} at stride ${stride}`);
      const [kh, kw, cin] = filter1.shape;
      const gS = convGeometry(shape, [kh, kw, cin, filterS.shape[3]], { stride, padding: a.padding });
      if (gS[4] !== outShape[3]) throw new Error(`${kernel}: block ${i}'s shortcut has ${gS[4]} output channels, its body ${outShape[3]}`);
      shortcut = { gS, tap, embeddedSize: kh * kw * cin * gS[4] };
    } else if (!tf.util.arraysEqual(outShape, shape)) {
      throw new Error(`${kernel}: block ${i} maps [${shape}] to [${outShape}]; an identity block keeps its input's shape`);
    }
    shape = outShape;
    return { g1, g2, shortcut };
  });
}

/** The head's geometry, after checking its pattern against its filter. */
function headGeometry(xShape: readonly number[], filter: tf.TensorInfo, active: tf.TensorInfo, a: SparseResidualBlocksAttrs): number[] {
  checkPattern(filter, active, 'residual blocks (head)');
  return convGeometry(xShape, filter.shape, { stride: a.headStride, padding: a.padding });
}

/** A block's lane buffers: the pair's, and a projection block's shortcut output and embedded filter and pattern. */
type BlockLanes = PairLanes & { yLanesS?: Float32Array; filterS?: Float32Array; activeS?: Float32Array };

/** One block's arrays for residualBlocksForward: its layers' inputs by name, its statistics, its lane buffers. */
interface BlockArrays {
  readonly weights: (name: BlockInput) => Float32Array;
  /** mean1, variance1, mean2, variance2 (meanS, varianceS): written in training, read (running statistics) in evaluation. */
  readonly stats: readonly Float32Array[];
  readonly lanes: BlockLanes;
}

/**
 * The forward pass of a run of residual blocks, shared by training and evaluation:
 * each block's first layer writes the second's input lanes; a projection block's shortcut, run as the first
 * layer's geometry on the same input lanes, writes its BatchNorm output into a buffer of the second layer's
 * input-lane layout; the join (ReLU after adding the block's input, read from its input lanes, or the
 * shortcut's output) goes to the next block's input lanes, or for the last block to z (NHWC). Each output
 * bound for the next layer's input lanes is left pending and written by that layer's forward pass, row by
 * row just ahead of its gather (x: the first block's input, NHWC, already in its lanes (null), or pending).
 */
function residualBlocksForward(addon: NativeAddon, a: SparseResidualBlocksAttrs, x: Float32Array | PendingLanes | null, z: Float32Array,
  geometry: readonly BlockGeometry[], arraysOf: (block: number) => BlockArrays, inference: boolean): void {
  const blocks = geometry.map((_, i) => arraysOf(i));
  let input = x;
  blocks.forEach(({ weights: w, stats, lanes }, i) => {
    const { g1, g2, shortcut } = geometry[i];
    const next = blocks[i + 1];
    const between = addon.sparseConvBnForward(g1, a.epsilon1[i], a.relu1[i], input, w('filter1'), w('active1'), w('gamma1'), w('beta1'), null,
      stats[0], stats[1], lanes.xLanes1, lanes.yLanes1, g2, null, null, null, null, inference, false, true)!;
    let skip = lanes.xLanes1;
    let skipGeometry = g1;
    if (shortcut) {
      skip = gradLanes.slot(addon, g2, 'shortcut-out', 0).values;
      skipGeometry = g2;
      addon.sparseConvBnForward(shortcut.gS, a.epsilonS[i], false, null, lanes.filterS!, lanes.activeS!, w('gammaS'), w('betaS'), null, stats[4], stats[5],
        lanes.xLanes1, lanes.yLanesS!, g2, skip, null, null, null, inference);
    }
    input = addon.sparseConvBnForward(g2, a.epsilon2[i], true, between, w('filter2'), w('active2'), w('gamma2'), w('beta2'), next ? null : z,
      stats[2], stats[3], null, lanes.yLanes2, next ? geometry[i + 1].g1 : null, next ? next.lanes.xLanes1 : null, null, skip, skipGeometry,
      inference, false, next !== undefined) ?? null;
  });
}

/**
 * Where each block's inputs start among a kernel's inputs (x is input 0), and at the end where the head's
 * start; with `running` (the evaluation kernel) each block's running statistics follow its inputs.
 */
function blockOffsets(a: SparseResidualBlocksAttrs, running: boolean): number[] {
  const offsets: number[] = [];
  let at = 1;
  for (const p of a.projection) {
    offsets.push(at);
    at += IDENTITY_BLOCK_INPUTS.length + (p ? SHORTCUT_INPUTS.length : 0) + (running ? statCount(p) : 0);
  }
  offsets.push(at);
  return offsets;
}

/** blockOffsets, after checking that the kernel got the inputs its attributes describe. */
function inputLayout(kernel: string, inputCount: number, a: SparseResidualBlocksAttrs, running: boolean): number[] {
  const offsets = blockOffsets(a, running);
  const blocks = a.projection.length;
  const expected = offsets[blocks] + (a.head ? HEAD_INPUTS.length + (running ? 2 : 0) : 0);
  if (blocks < 1 || blocks > MAX_RESIDUAL_BLOCKS || expected !== inputCount) {
    throw new Error(`${kernel}: the attributes list ${blocks} blocks (1-${MAX_RESIDUAL_BLOCKS}; ${a.projection.filter(Boolean).length} with a shortcut)${a.head ? ' and a head' : ''}, which take ${expected} inputs; got ${inputCount}`);
  }
  return offsets;
}

/** Index of block i's input `name` among the kernel's inputs. */
function inputIndex(offsets: readonly number[], name: BlockInput, block: number): number {
  const k = (IDENTITY_BLOCK_INPUTS as readonly string[]).indexOf(name);
  return offsets[block] + (k >= 0 ? k : IDENTITY_BLOCK_INPUTS.length + (SHORTCUT_INPUTS as readonly string[]).indexOf(name));
}

/** Elements of a convolution's input in lanes without padding ([inH][inW][inC][lanes]), as an input gradient in lanes is laid out. */
function inputInLanesSize(addon: NativeAddon, g: readonly number[]): number {
  const lanes = addon.sparseConvLaneSizes([...g])[2] / (g[9] * g[10] * g[4]);
  return g[1] * g[2] * g[3] * lanes;
}

/** Statistics per block: mean and variance of each BatchNorm. */
const statCount = (projection: boolean): number => (projection ? 6 : 4);

/**
 * Residual blocks in sequence, h ← relu(BN2(conv2(act(BN1(conv1(h))))) + shortcut(h)), the shortcut the
 * identity or (a projection block, a stage entry) BNs(convS(h)) with a 1×1 convS of conv1's stride, as one
 * tfjs kernel so that the activations between the blocks never leave the lane layout: each block's join
 * writes straight into the next block's padded input lanes, reading its skip from its own input lanes (or
 * the shortcut's output), and only the last block writes NHWC. A projection block's shortcut is run as its
 * first layer's geometry with the 1×1 weights at one tap of the window (shortcutTap), so it reads the
 * same input lanes and its output lands in lanes too. Backward, the gradient at each inner join is formed
 * in lanes while the next block's input gradient is gathered (plus that block's shortcut gradient: its
 * identity, or the shortcut's input gradient gathered in lanes), through the join's ReLU read from the
 * input lanes. Per inner join that saves an NHWC activation transposed into lanes forward, and an NHWC
 * gradient written and read back with its ReLU pass backward; per projection block also the oneDNN 1×1
 * convolution with its NHWC BatchNorm, the join and the tape's sum of the input's two gradients. An identity
 * block's arithmetic is the pair kernel's, in the same order: the results are bitwise the same (tested).
 *
 * With a head (attrs.head: a convolution + BatchNorm before the first block, a ResNet's stem) the head
 * writes the first block's input lanes, and its output gradient is gathered in lanes from the first block.
 *
 * Inputs (an array, so any number of blocks): x, then per block filter1, active1, gamma1, beta1, filter2,
 * active2, gamma2, beta2 (and filterS, activeS, gammaS, betaS for a projection block), then the head's
 * filterH, activeH, gammaH, betaH; outputs [z, then per block mean1, variance1, mean2, variance2 (and meanS,
 * varianceS), then the head's mean and variance].
 */
function registerSparseResidualBlocks(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.sparseResidualBlocks,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const a = attrs as unknown as SparseResidualBlocksAttrs;
      const all = Object.values(inputs) as tf.TensorInfo[];
      const offsets = inputLayout('residual blocks', all.length, a, false);
      const x = all[0];
      const input = (name: BlockInput, i: number): tf.TensorInfo => all[inputIndex(offsets, name, i)];
      const v = (name: BlockInput, i: number): Float32Array => f32(cpu, input(name, i), `${name} of block ${i}`);
      const headInput = (name: HeadInput): tf.TensorInfo => all[offsets[a.projection.length] + HEAD_INPUTS.indexOf(name)];
      const gH = a.head ? headGeometry(x.shape, headInput('filterH'), headInput('activeH'), a) : undefined;
      const geometry = residualBlockGeometries('residual blocks', gH ? outputShape(gH) : x.shape, a, a.projection.length, input);
      const lanes: BlockLanes[] = geometry.map(({ g1, g2, shortcut }, i) => {
        const [in1, , out1] = addon.sparseConvLaneSizes(g1);
        const [, , out2] = addon.sparseConvLaneSizes(g2);
        const pair = { xLanes1: bufferPool.allocate(in1), yLanes1: bufferPool.allocate(out1), yLanes2: bufferPool.allocate(out2) };
        if (!shortcut) return pair;
        const kw = g1[6];
        return {
          ...pair, yLanesS: bufferPool.allocate(addon.sparseConvLaneSizes(shortcut.gS)[2]),
          filterS: embedAtTap(v('filterS', i), kw, shortcut.tap, bufferPool.allocate(shortcut.embeddedSize)),
          activeS: embedAtTap(v('activeS', i), kw, shortcut.tap, bufferPool.allocate(shortcut.embeddedSize)),
        };
      });
      const { g2: last } = geometry[geometry.length - 1];
      const outShape = outputShape(last);
      const z = bufferPool.allocate(size(outShape));
      const stats = geometry.map(({ g1, g2, shortcut }) => [g1[4], g1[4], g2[4], g2[4], ...(shortcut ? [g2[4], g2[4]] : [])].map((c) => bufferPool.allocate(c)));
      const kept: Record<string, Float32Array> = Object.fromEntries(lanes.flatMap((l, i) => Object.entries(l).map(([k, buffer]) => [`${k}${i}`, buffer])));
      let head: PendingLanes | undefined;
      if (gH) {
        // The head's output is the first block's input lanes, written by its forward pass.
        const [inH, , outH] = addon.sparseConvLaneSizes(gH);
        kept.headX = bufferPool.allocate(inH);
        kept.headY = bufferPool.allocate(outH);
        stats.push([gH[4], gH[4]].map((c) => bufferPool.allocate(c)));
        const h = (name: HeadInput): Float32Array => f32(cpu, headInput(name), `${name} of the head`);
        head = addon.sparseConvBnForward(gH, a.headEpsilon, a.headRelu, f32(cpu, x, 'x'), h('filterH'), h('activeH'), h('gammaH'), h('betaH'), null,
          stats[stats.length - 1][0], stats[stats.length - 1][1], kept.headX, kept.headY, geometry[0].g1, lanes[0].xLanes1, null, null, null, false, false, true)!;
      }
      residualBlocksForward(addon, a, head ?? f32(cpu, x, 'x'), z, geometry, (i) => ({ weights: (name) => v(name, i), stats: stats[i], lanes: lanes[i] }), false);
      const outs = [cpu.makeTensorInfo(outShape, 'float32', z), ...stats.flat().map((s) => cpu.makeTensorInfo([s.length], 'float32', s))];
      keepLanes(z, kept);
      return outs;
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.sparseResidualBlocks,
    saveAllInputs: true,
    outputsToSave: Array.from({ length: 1 + 6 * MAX_RESIDUAL_BLOCKS }, () => true),
    gradFunc: (dys, saved, attrs) => {
      const a = attrs as unknown as SparseResidualBlocksAttrs;
      const blocks = a.projection.length;
      const offsets = blockOffsets(a, false);
      const inputCount = offsets[blocks] + (a.head ? HEAD_INPUTS.length : 0);
      const x = saved[0];
      const input = (name: BlockInput, i: number): tf.Tensor => saved[inputIndex(offsets, name, i)];
      const headInput = (name: HeadInput): tf.Tensor => saved[offsets[blocks] + HEAD_INPUTS.indexOf(name)];
      const z = saved[inputCount];
      const dz = (dys as tf.Tensor[])[0];
      const v = (t: tf.Tensor, name: string): Float32Array => f32(cpuBackend(), t, name);
      // Block i's statistics among the outputs: mean1, variance1, mean2, variance2 (meanS, varianceS).
      const statsStart = a.projection.map((_, i) => inputCount + 1 + a.projection.slice(0, i).reduce((n, p) => n + statCount(p), 0));
      const stat = (i: number, k: number): Float32Array => v(saved[statsStart[i] + k], 'batch statistics');
      const w = (name: BlockInput, i: number): Float32Array => v(input(name, i), `${name} of block ${i}`);
      const gH = a.head ? headGeometry(x.shape, headInput('filterH'), headInput('activeH'), a) : undefined;
      const geometry = residualBlockGeometries('residual blocks gradient', gH ? outputShape(gH) : x.shape, a, blocks, input);
      // The head's mean and variance follow every block's statistics.
      const headStat = (k: number): Float32Array => v(saved[statsStart[blocks - 1] + statCount(a.projection[blocks - 1]) + k], 'batch statistics of the head');
      const lanes = (i: number, name: keyof BlockLanes, kept: Record<string, Float32Array>): Float32Array => kept[`${name}${i}`];
      // Every gradient (x's only when asked for), last block first. The gradient at each block's output (after its join's
      // ReLU) alternates between two lane buffers: block i's is read while block i − 1's is written. All of
      // this node's thunks run before the next node's, so the shared slots are not overwritten in between.
      const xGradient = inputGradientOrder('residual blocks');
      const backward = once(() => {
        const kept = lanesOf<Record<string, Float32Array>>(z, 'residual blocks');
        const grads = geometry.map((_, i) => Object.fromEntries([...IDENTITY_BLOCK_INPUTS, ...(a.projection[i] ? SHORTCUT_INPUTS : [])]
          .filter((name) => !name.startsWith('active')).map((name) => [name, bufferPool.allocate(input(name, i).size)])) as Record<string, Float32Array>);
        const joinBuffer = (i: number): Float32Array => gradLanes.slot(addon, geometry[i].g2, `blocks-join-${i % 2}`, 2).values;
        let join = joinBuffer(blocks - 1);
        addon.reluGradToLanes(geometry[blocks - 1].g2, v(dz, 'dz'), v(z, 'z'), join);
        // BatchNorm gradient sums taken by the gather that wrote a layer's output gradient (undefined: the
        // layer's backward pass takes them): the next block's input gradient is this block's join.
        let joinSums: { second: Float64Array; shortcut?: Float64Array } | undefined;
        const sumsTarget = (geometryOf: number[], i: number, layer: '1' | '2' | 'S', relu: boolean): GradientSumsTarget => {
          const k = { 1: 0, 2: 2, S: 4 }[layer];
          return { geometry: geometryOf, yLanes: lanes(i, `yLanes${layer}`, kept), mean: stat(i, k), variance: stat(i, k + 1), gamma: w(`gamma${layer}`, i),
            beta: w(`beta${layer}`, i), epsilon: { 1: a.epsilon1, 2: a.epsilon2, S: a.epsilonS }[layer][i], relu, sums: new Float64Array(2 * geometryOf[4]) };
        };
        // x's gradient (NHWC) when asked for, taken in the first layer's backward pass with its filter gradient.
        const dx = xGradient.wanted() ? bufferPool.allocate(x.size) : undefined;
        for (let i = blocks - 1; ; i--) {
          const { g1, g2, shortcut } = geometry[i];
          const d = grads[i];
          const dz1 = gradLanes.slot(addon, g1, 'blocks-between', 2).values;
          // Each dy is transient: written row by row just ahead of the pass that takes both of its layer's
          // gradients, never stored whole. conv1's gradient sums are taken as conv2's input gradient writes dz1.
          const pending2 = addon.sparseConvBnBackward(g2, a.epsilon2[i], false, join, true, lanes(i, 'yLanes2', kept), stat(i, 2), stat(i, 3),
            w('gamma2', i), w('beta2', i), null, d.gamma2, d.beta2, null, true, joinSums?.second);
          const sums1 = sumsTarget(g1, i, '1', a.relu1[i]);
          // conv2's input lanes re-derived from conv1's output, a few rows ahead of its filter gradient.
          const x2 = addon.sparseConvPendingInput(g1, g2, sums1.epsilon, sums1.relu, sums1.yLanes, sums1.mean, sums1.variance, sums1.gamma, sums1.beta);
          addon.sparseConvBackwardData(g2, null, w('filter2', i), w('active2', i), dz1, true, null, null, pending2, [sums1], { xLanes: x2, dfilter: d.filter2 });
          // The block input's gradient besides conv1's: the identity's (the join's gradient itself) or the shortcut's, gathered in lanes.
          let besides = join;
          if (shortcut) {
            const pendingS = addon.sparseConvBnBackward(shortcut.gS, a.epsilonS[i], false, join, true, lanes(i, 'yLanesS', kept), stat(i, 4), stat(i, 5),
              w('gammaS', i), w('betaS', i), null, d.gammaS, d.betaS, null, true, joinSums?.shortcut);
            // The shortcut's filter gradient at its tap of the window is the 1×1 filter's gradient.
            const embedded = gradLanes.scratch('shortcut-dfilter', shortcut.embeddedSize);
            besides = gradLanes.scratch('shortcut-dx', inputInLanesSize(addon, g1));
            addon.sparseConvBackwardData(shortcut.gS, null, lanes(i, 'filterS', kept), lanes(i, 'activeS', kept), besides, true, null, null, pendingS, null,
              { xLanes: lanes(i, 'xLanes1', kept), dfilter: embedded });
            const at = (shortcut.tap[0] * g1[6] + shortcut.tap[1]) * d.filterS.length;
            d.filterS.set(embedded.subarray(at, at + d.filterS.length));
          }
          const pending1 = addon.sparseConvBnBackward(g1, sums1.epsilon, sums1.relu, dz1, true, sums1.yLanes, sums1.mean, sums1.variance, sums1.gamma,
            sums1.beta, null, d.gamma1, d.beta1, null, true, sums1.sums);
          const conv1 = { xLanes: lanes(i, 'xLanes1', kept), dfilter: d.filter1 };
          if (i === 0) {
            if (!gH) {
              // conv1's input gradient is x's (plus the identity's or shortcut's), when asked for.
              if (dx) addon.sparseConvBackwardData(g1, null, w('filter1', 0), w('active1', 0), dx, false, besides, null, pending1, null, conv1);
              else addon.sparseConvBackwardWeights(g1, conv1.xLanes, null, w('active1', 0), d.filter1, pending1);
              return { grads, dx };
            }
            // The head's output gradient (the first block's input gradient plus its shortcut's) in lanes, then its BatchNorm and filter gradients.
            const h = (name: HeadInput): Float32Array => v(headInput(name), `${name} of the head`);
            const dzH = gradLanes.slot(addon, gH, 'head-between', 2).values;
            const sumsH: GradientSumsTarget = { geometry: gH, yLanes: kept.headY, mean: headStat(0), variance: headStat(1), gamma: h('gammaH'), beta: h('betaH'),
              epsilon: a.headEpsilon, relu: a.headRelu, sums: new Float64Array(2 * gH[4]) };
            addon.sparseConvBackwardData(g1, null, w('filter1', 0), w('active1', 0), dzH, true, besides, null, pending1, [sumsH], conv1);
            const head = { filterH: bufferPool.allocate(headInput('filterH').size), gammaH: bufferPool.allocate(headInput('gammaH').size),
              betaH: bufferPool.allocate(headInput('betaH').size) };
            const pendingH = addon.sparseConvBnBackward(gH, a.headEpsilon, a.headRelu, dzH, true, kept.headY, headStat(0), headStat(1), h('gammaH'),
              h('betaH'), null, head.gammaH, head.betaH, null, true, sumsH.sums);
            // The head's input gradient is x's, when asked for.
            if (dx) addon.sparseConvBackwardData(gH, null, h('filterH'), h('activeH'), dx, false, null, null, pendingH, null, { xLanes: kept.headX, dfilter: head.filterH });
            else addon.sparseConvBackwardWeights(gH, kept.headX, null, h('activeH'), head.filterH, pendingH);
            return { grads, dx, head };
          }
          // The previous block's join gradient: this block's input gradient plus its shortcut's, kept
          // where the previous join's output (this block's input, in its input lanes) was positive.
          // Its gradient sums for the previous block's conv2 (and shortcut) are taken on the way.
          const previous = joinBuffer(i - 1);
          const before = geometry[i - 1];
          const targets = [sumsTarget(before.g2, i - 1, '2', false), ...(before.shortcut ? [sumsTarget(before.shortcut.gS, i - 1, 'S', false)] : [])];
          addon.sparseConvBackwardData(g1, null, w('filter1', i), w('active1', i), previous, true, besides, conv1.xLanes, pending1, targets, conv1);
          joinSums = { second: targets[0].sums, shortcut: targets[1]?.sums };
          join = previous;
        }
      });
      const result: Record<string, () => tf.Tensor> = {
        0: () => {
          xGradient.ask();
          return wrap(backward().dx!, x.shape);
        },
      };
      if (gH) {
        HEAD_INPUTS.forEach((name, k) => {
          const t = headInput(name);
          result[offsets[blocks] + k] = name === 'activeH' ? () => tf.zerosLike(t) : () => wrap(backward().head![name], t.shape);
        });
      }
      for (let i = 0; i < blocks; i++) {
        for (const name of [...IDENTITY_BLOCK_INPUTS, ...(a.projection[i] ? SHORTCUT_INPUTS : [])]) {
          const index = inputIndex(offsets, name, i);
          // The patterns are constants of the step (never differentiated).
          result[index] = name.startsWith('active') ? () => tf.zerosLike(input(name, i)) : () => wrap(backward().grads[i][name], input(name, i).shape);
        }
      }
      return result;
    },
  });
}

/**
 * The residual-blocks kernel's forward pass in evaluation: BatchNorm with the running statistics, nothing
 * kept for a gradient (the ops use it only where none is recorded). Inputs x, then per block the training
 * kernel's inputs followed by its running statistics (mean1, variance1, mean2, variance2, and meanS,
 * varianceS for a projection block), then the head's inputs and its running mean and variance; output z.
 * The lane buffers are scratch kept per geometry across calls: each block's input lanes alternate between
 * two, read as the block's skip while its join writes the next block's.
 */
function registerSparseResidualBlocksInfer(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.sparseResidualBlocksInfer,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const a = attrs as unknown as SparseResidualBlocksAttrs;
      const all = Object.values(inputs) as tf.TensorInfo[];
      const blocks = a.projection.length;
      const offsets = inputLayout('residual blocks (evaluation)', all.length, a, true);
      const x = all[0];
      const input = (name: BlockInput, i: number): tf.TensorInfo => all[inputIndex(offsets, name, i)];
      const w = (name: BlockInput, i: number): Float32Array => f32(cpu, input(name, i), `${name} of block ${i}`);
      const statsStart = (i: number): number => offsets[i] + IDENTITY_BLOCK_INPUTS.length + (a.projection[i] ? SHORTCUT_INPUTS.length : 0);
      const running = (i: number): Float32Array[] =>
        Array.from({ length: statCount(a.projection[i]) }, (_, k) => f32(cpu, all[statsStart(i) + k], `running statistics of block ${i}`));
      const headAt = offsets[blocks];
      const headInput = (name: HeadInput): tf.TensorInfo => all[headAt + HEAD_INPUTS.indexOf(name)];
      const gH = a.head ? headGeometry(x.shape, headInput('filterH'), headInput('activeH'), a) : undefined;
      const geometry = residualBlockGeometries('residual blocks (evaluation)', gH ? outputShape(gH) : x.shape, a, blocks, input);
      const { g2: last } = geometry[blocks - 1];
      const outShape = outputShape(last);
      const z = bufferPool.allocate(size(outShape));
      const lanes = geometry.map(({ g1, g2, shortcut }, i): BlockLanes => {
        const pair: PairLanes = {
          xLanes1: gradLanes.slot(addon, g1, `infer-blocks-${i % 2}`, 0).values, yLanes1: gradLanes.slot(addon, g1, 'infer-blocks-y1', 2).values,
          yLanes2: gradLanes.slot(addon, g2, 'infer-blocks-y2', 2).values,
        };
        if (!shortcut) return pair;
        return {
          ...pair, yLanesS: gradLanes.slot(addon, shortcut.gS, 'infer-blocks-yS', 2).values,
          filterS: embedAtTap(w('filterS', i), g1[6], shortcut.tap, gradLanes.scratch(`infer-shortcut-filter-${i}`, shortcut.embeddedSize)),
          activeS: embedAtTap(w('activeS', i), g1[6], shortcut.tap, gradLanes.scratch(`infer-shortcut-active-${i}`, shortcut.embeddedSize)),
        };
      });
      let head: PendingLanes | undefined;
      if (gH) {
        const h = (name: HeadInput): Float32Array => f32(cpu, headInput(name), `${name} of the head`);
        const stat = (k: number): Float32Array => f32(cpu, all[headAt + HEAD_INPUTS.length + k], 'running statistics of the head');
        head = addon.sparseConvBnForward(gH, a.headEpsilon, a.headRelu, f32(cpu, x, 'x'), h('filterH'), h('activeH'), h('gammaH'), h('betaH'), null, stat(0),
          stat(1), gradLanes.slot(addon, gH, 'infer-head-x', 0).values, gradLanes.slot(addon, gH, 'infer-head-y', 2).values, geometry[0].g1, lanes[0].xLanes1,
          null, null, null, true, false, true)!;
      }
      residualBlocksForward(addon, a, head ?? f32(cpu, x, 'x'), z, geometry, (i) => ({ weights: (name) => w(name, i), stats: running(i), lanes: lanes[i] }), true);
      return cpu.makeTensorInfo(outShape, 'float32', z);
    },
  });
}

/** Registers the residual-blocks kernels: training (with its gradient) and evaluation. */
export function registerResidualBlockKernels(addon: NativeAddon): void {
  registerSparseResidualBlocks(addon);
  registerSparseResidualBlocksInfer(addon);
}
