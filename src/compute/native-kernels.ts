import * as tf from '@tensorflow/tfjs';
import { bufferPool } from './buffer-pool';
import type { NativeAddon } from './native-addon';

/**
 * The native addon's kernels registered as tfjs kernels of the 'cpu' backend, each with its gradient,
 * so tf.grads differentiates through them like any built-in op. Kernels read their inputs from the
 * backend's own Float32Arrays and hand freshly written Float32Arrays back to it: no copies in either
 * direction. Gradients are lazy per input (tfjs only asks for inputs on the path to what is being
 * differentiated), so e.g. the first convolution never computes a gradient for the image batch.
 */
export const KERNELS = {
  conv2d: 'CiglConv2D',
  sparseConv2d: 'CiglSparseConv2D',
  sparseConvBn: 'CiglSparseConvBn',
  sparseConvBnInfer: 'CiglSparseConvBnInfer',
  sparseConvBnPair: 'CiglSparseConvBnPair',
  sparseResidualBlocks: 'CiglSparseResidualBlocks',
  sparseIdentityBlocksInfer: 'CiglSparseIdentityBlocksInfer',
  batchNormTrain: 'CiglBatchNormTrain',
  batchNormInfer: 'CiglBatchNormInfer',
  addRelu: 'CiglAddRelu',
  maxPool2: 'CiglMaxPool2',
  globalAvgPool: 'CiglGlobalAvgPool',
  dense: 'CiglDense',
  softmaxCrossEntropy: 'CiglSoftmaxCrossEntropy',
  sgdMomentumStep: 'CiglSgdMomentumStep',
} as const;

/** The part of tfjs's cpu backend the kernels use: its data store and zero-copy tensor creation. */
interface CpuBackend extends tf.KernelBackend {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

let registeredWith: NativeAddon | undefined;

/** Registers every kernel and gradient once per process; later calls are no-ops. */
export function registerNativeKernels(addon: NativeAddon): void {
  if (registeredWith) {
    if (registeredWith !== addon) throw new Error('cigl native kernels are already registered with another addon instance');
    return;
  }
  registeredWith = addon;
  bufferPool.alignWith((array) => addon.byteAlignment(array));
  registerConv(addon);
  registerSparseConv(addon);
  registerSparseConvBn(addon);
  registerSparseConvBnInfer(addon);
  registerSparseConvBnPair(addon);
  registerSparseResidualBlocks(addon);
  registerSparseIdentityBlocksInfer(addon);
  registerBatchNorm(addon);
  registerPointwise(addon);
  registerDense(addon);
  registerSgd(addon);
  accelerateCpuArithmetic(addon);
}

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function cpuBackend(backend: unknown = tf.backend()): CpuBackend {
  const candidate = backend as Partial<CpuBackend>;
  if (typeof candidate.makeTensorInfo !== 'function' || typeof candidate.data?.get !== 'function' || tf.getBackend() !== 'cpu') {
    throw new Error(`cigl native kernels run on the tfjs 'cpu' backend, but the active backend is '${tf.getBackend()}'`);
  }
  return candidate as CpuBackend;
}

/** The named kernel inputs, each required. */
function need<K extends string>(inputs: tf.NamedTensorInfoMap, ...names: K[]): Record<K, tf.TensorInfo> {
  const out = {} as Record<K, tf.TensorInfo>;
  for (const name of names) {
    const t = inputs[name];
    if (!t) throw new Error(`cigl native kernel: missing input '${name}'`);
    out[name] = t;
  }
  return out;
}

/** The backend's own Float32Array of a tensor (no copy). */
function f32(backend: CpuBackend, t: tf.TensorInfo, name: string): Float32Array {
  const values = backend.data.get(t.dataId).values;
  if (t.dtype !== 'float32' || !(values instanceof Float32Array)) {
    throw new Error(`cigl native kernel input '${name}' must be a float32 tensor, got ${t.dtype}`);
  }
  return values;
}

/** Wraps a freshly written array as a tensor; the cpu backend stores it as is. */
const wrap = (values: Float32Array, shape: readonly number[]): tf.Tensor => tf.tensor(values, shape as number[], 'float32');

/** Evaluates `compute` at most once, for gradient thunks that share one native backward call. */
function once<T>(compute: () => T): () => T {
  let result: T | undefined;
  return () => (result ??= compute());
}

// ---- convolution ------------------------------------------------------------------------------------

interface ConvAttrs {
  stride: number;
  padding: 'same' | 'valid';
}

/** The 15-number geometry the addon takes, with tfjs's own padding rule (extra row/column bottom/right). */
export function convGeometry(xShape: readonly number[], filterShape: readonly number[], attrs: ConvAttrs): number[] {
  const info = tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number],
    attrs.stride, 1, attrs.padding);
  const pad = info.padInfo;
  return [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outChannels, info.filterHeight, info.filterWidth,
    info.strideHeight, info.strideWidth, info.outHeight, info.outWidth, pad.top, pad.left, pad.bottom, pad.right];
}

function registerConv(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.conv2d,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x, filter } = need(inputs, 'x', 'filter');
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      const outShape = [g[0], g[9], g[10], g[4]];
      const y = bufferPool.allocate(size(outShape));
      addon.convForward(g, f32(cpu, x, 'x'), f32(cpu, filter, 'filter'), y);
      return cpu.makeTensorInfo(outShape, 'float32', y);
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.conv2d,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter] = saved;
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      const dyValues = (): Float32Array => f32(cpuBackend(), dy as tf.Tensor, 'dy');
      return {
        x: () => {
          const dx = bufferPool.allocate(x.size);
          addon.convBackwardData(g, dyValues(), f32(cpuBackend(), filter, 'filter'), dx);
          return wrap(dx, x.shape);
        },
        filter: () => {
          const dw = bufferPool.allocate(filter.size);
          addon.convBackwardWeights(g, f32(cpuBackend(), x, 'x'), dyValues(), dw);
          return wrap(dw, filter.shape);
        },
      };
    },
  });
}

// ---- sparse convolution ------------------------------------------------------------------------------

/**
 * Lane buffers a kernel's gradient reads (its input and output in the batch-innermost layout), kept with
 * the kernel's first output rather than returned as outputs: tfjs hands every output outside the
 * gradient path a zero-filled dy, which for 10 MB lane buffers per layer cost more than the sparse
 * convolutions saved. The gradient saves that output, so the buffers live exactly as long as the
 * gradient may need them, and return to the pool with it (BufferPool.attach).
 */
const laneCopies = new WeakMap<Float32Array, Readonly<Record<string, Float32Array>>>();

function keepLanes(owner: Float32Array, lanes: Readonly<Record<string, Float32Array>>): void {
  for (const buffer of Object.values(lanes)) bufferPool.attach(owner, buffer);
  laneCopies.set(owner, lanes);
}

function lanesOf<T extends Readonly<Record<string, Float32Array>>>(owner: tf.TensorInfo, kernel: string): T {
  const found = laneCopies.get(f32(cpuBackend(), owner, 'output'));
  if (!found) throw new Error(`${kernel} gradient: the lane copies are gone (was the output overwritten?)`);
  return found as T;
}

/** An active pattern must have its filter's shape. */
function checkPattern(filter: tf.TensorInfo, active: tf.TensorInfo, kernel: string): void {
  if (!tf.util.arraysEqual(filter.shape, active.shape)) throw new Error(`${kernel}: active pattern ${active.shape} does not match filter ${filter.shape}`);
}

/**
 * conv2d through the active weights only (native/src/sparse_conv.h). Inputs x, filter and `active` (the
 * filter's multiplier: nonzero where the weight takes part, so exactly-zero grown weights still get
 * their gradient). The forward pass also writes x in the lane layout, which the filter gradient reads
 * (kept with y, see keepLanes).
 */

function registerSparseConv(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.sparseConv2d,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x, filter, active } = need(inputs, 'x', 'filter', 'active');
      checkPattern(filter, active, 'sparse conv2d');
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      const outShape = [g[0], g[9], g[10], g[4]];
      const [inputLanes] = addon.sparseConvLaneSizes(g);
      const y = bufferPool.allocate(size(outShape));
      const xLanes = bufferPool.allocate(inputLanes);
      addon.sparseConvForward(g, f32(cpu, x, 'x'), f32(cpu, filter, 'filter'), f32(cpu, active, 'active'), y, xLanes);
      const out = cpu.makeTensorInfo(outShape, 'float32', y);
      keepLanes(y, { xLanes });
      return out;
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.sparseConv2d,
    inputsToSave: ['x', 'filter', 'active'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter, active, y] = saved;
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      // dy in the lane layout, shared by both gradients.
      const dyLanes = (): Float32Array => gradLanes.of(addon, g, dy as tf.Tensor);
      return {
        x: () => {
          const dx = bufferPool.allocate(x.size);
          addon.sparseConvBackwardData(g, dyLanes(), f32(cpuBackend(), filter, 'filter'), f32(cpuBackend(), active, 'active'), dx);
          return wrap(dx, x.shape);
        },
        filter: () => {
          const { xLanes } = lanesOf<{ xLanes: Float32Array }>(y, 'sparse conv2d');
          const dw = bufferPool.allocate(filter.size);
          addon.sparseConvBackwardWeights(g, xLanes, dyLanes(), f32(cpuBackend(), active, 'active'), dw);
          return wrap(dw, filter.shape);
        },
        // The pattern is a constant of the step (never differentiated).
        active: () => tf.zerosLike(active),
      };
    },
  });
}

/**
 * One lane buffer per geometry for dy, kept across steps (a fresh 8 MB array per layer and step would
 * cost page faults and GC, see buffer-pool.ts). tfjs asks for the input and filter gradients of a node
 * one after the other, so the buffer is filled once per node; it is refilled whenever it holds another
 * tensor's dy (dataIds are never reused, so identity is a safe key).
 */
const gradLanes = {
  buffers: new Map<string, { holds?: object; values: Float32Array }>(),
  of(addon: NativeAddon, geometry: number[], dy: tf.Tensor): Float32Array {
    const slot = this.slot(addon, geometry);
    if (slot.holds !== dy.dataId) {
      addon.sparseConvGradToLanes(geometry, f32(cpuBackend(), dy, 'dy'), slot.values);
      slot.holds = dy.dataId;
    }
    return slot.values;
  },
  /**
   * A buffer for a kernel that writes its dy in lanes itself; `owner` now holds it. `role` keeps apart
   * buffers one kernel needs at the same time for two layers of the same geometry.
   */
  claim(addon: NativeAddon, geometry: number[], owner: object, role = ''): Float32Array {
    const slot = this.slot(addon, geometry, role);
    slot.holds = owner;
    return slot.values;
  },
  /** A persistent buffer of `length` floats for one role (scratch that outlives no node's thunks). */
  scratch(role: string, length: number): Float32Array {
    const key = `${role}|${length}`;
    let slot = this.buffers.get(key);
    if (!slot) this.buffers.set(key, (slot = { values: bufferPool.alignedArray(length) }));
    return slot.values;
  },
  /** The persistent buffer of one role and geometry: input (which = 0), grad (1) or output lanes (2), sparseConvLaneSizes' order. */
  slot(addon: NativeAddon, geometry: number[], role = '', which: 0 | 1 | 2 = 1): { holds?: object; values: Float32Array } {
    const key = `${role}|${which}|${geometry.join(',')}`;
    let slot = this.buffers.get(key);
    if (!slot) this.buffers.set(key, (slot = { values: bufferPool.alignedArray(addon.sparseConvLaneSizes(geometry)[which]) }));
    return slot;
  },
};

// ---- sparse convolution + BatchNorm ----------------------------------------------------------------------

interface SparseConvBnAttrs extends ConvAttrs {
  epsilon: number;
  relu: boolean;
}

/**
 * The sparse convolution fused with training-mode BatchNorm (+ ReLU) (native/src/sparse_conv.h): inputs x,
 * filter, active, gamma, beta; outputs [z, batch mean, batch (biased) variance] as BatchNormTrain's. The
 * lane copies of x and y the gradient reads are kept with z (see keepLanes). The gradient writes dy
 * straight into the shared grad-lanes buffer of the geometry, which both convolution gradients read.
 */
type ConvBnLanes = { xLanes: Float32Array; yLanes: Float32Array };

function registerSparseConvBn(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.sparseConvBn,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x, filter, active, gamma, beta } = need(inputs, 'x', 'filter', 'active', 'gamma', 'beta');
      checkPattern(filter, active, 'sparse conv2d + BatchNorm');
      const { epsilon, relu } = attrs as unknown as SparseConvBnAttrs;
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      const outShape = [g[0], g[9], g[10], g[4]];
      const channels = g[4];
      const [inputLanes, , outputLanes] = addon.sparseConvLaneSizes(g);
      const z = bufferPool.allocate(size(outShape));
      const mean = bufferPool.allocate(channels);
      const variance = bufferPool.allocate(channels);
      const xLanes = bufferPool.allocate(inputLanes);
      const yLanes = bufferPool.allocate(outputLanes);
      addon.sparseConvBnForward(g, epsilon, relu, f32(cpu, x, 'x'), f32(cpu, filter, 'filter'), f32(cpu, active, 'active'), f32(cpu, gamma, 'gamma'),
        f32(cpu, beta, 'beta'), z, mean, variance, xLanes, yLanes);
      const out = [cpu.makeTensorInfo(outShape, 'float32', z), cpu.makeTensorInfo([channels], 'float32', mean),
        cpu.makeTensorInfo([channels], 'float32', variance)];
      keepLanes(z, { xLanes, yLanes });
      return out;
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.sparseConvBn,
    inputsToSave: ['x', 'filter', 'active', 'gamma', 'beta'],
    outputsToSave: [true, true, true],
    gradFunc: (dys, saved, attrs) => {
      const [x, filter, active, gamma, beta, z, mean, variance] = saved;
      const dz = (dys as tf.Tensor[])[0];
      const { epsilon, relu } = attrs as unknown as SparseConvBnAttrs;
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      const lanes = (): ConvBnLanes => lanesOf<ConvBnLanes>(z, 'sparse conv2d + BatchNorm');
      // BatchNorm's backward pass, once per node: dy in lanes, dgamma, dbeta.
      const backward = once(() => {
        const cpu = cpuBackend();
        const channels = gamma.size;
        const out = { dyLanes: gradLanes.claim(addon, g, dz.dataId), dgamma: bufferPool.allocate(channels), dbeta: bufferPool.allocate(channels) };
        addon.sparseConvBnBackward(g, epsilon, relu, f32(cpu, dz, 'dz'), false, lanes().yLanes, f32(cpu, mean, 'mean'), f32(cpu, variance, 'variance'),
          f32(cpu, gamma, 'gamma'), f32(cpu, beta, 'beta'), out.dyLanes, out.dgamma, out.dbeta);
        return out;
      });
      return {
        x: () => {
          const dx = bufferPool.allocate(x.size);
          addon.sparseConvBackwardData(g, backward().dyLanes, f32(cpuBackend(), filter, 'filter'), f32(cpuBackend(), active, 'active'), dx);
          return wrap(dx, x.shape);
        },
        filter: () => {
          const dw = bufferPool.allocate(filter.size);
          addon.sparseConvBackwardWeights(g, lanes().xLanes, backward().dyLanes, f32(cpuBackend(), active, 'active'), dw);
          return wrap(dw, filter.shape);
        },
        gamma: () => wrap(backward().dgamma, gamma.shape),
        beta: () => wrap(backward().dbeta, beta.shape),
        // The pattern is a constant of the step (never differentiated).
        active: () => tf.zerosLike(active),
      };
    },
  });
}

// ---- sparse convolution + BatchNorm in evaluation ----------------------------------------------------------

/**
 * The sparse convolution fused with evaluation-mode BatchNorm (+ ReLU): inputs x, filter, active, gamma,
 * beta and the running mean and variance; output z. The lane copies are scratch kept per geometry across
 * calls (nothing is saved for a gradient: the ops use it only where no gradient is being recorded).
 */
function registerSparseConvBnInfer(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.sparseConvBnInfer,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x, filter, active, gamma, beta, mean, variance } = need(inputs, 'x', 'filter', 'active', 'gamma', 'beta', 'mean', 'variance');
      checkPattern(filter, active, 'sparse conv2d + BatchNorm (evaluation)');
      const { epsilon, relu } = attrs as unknown as SparseConvBnAttrs;
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      const outShape = [g[0], g[9], g[10], g[4]];
      const z = bufferPool.allocate(size(outShape));
      addon.sparseConvBnForward(g, epsilon, relu, f32(cpu, x, 'x'), f32(cpu, filter, 'filter'), f32(cpu, active, 'active'), f32(cpu, gamma, 'gamma'),
        f32(cpu, beta, 'beta'), z, f32(cpu, mean, 'mean'), f32(cpu, variance, 'variance'), gradLanes.slot(addon, g, 'infer-x', 0).values,
        gradLanes.slot(addon, g, 'infer-y', 2).values, null, null, null, null, null, true);
      return cpu.makeTensorInfo(outShape, 'float32', z);
    },
  });
}

// ---- two chained sparse convolutions + BatchNorm ------------------------------------------------------------

export interface SparseConvBnPairAttrs {
  padding: 'same' | 'valid';
  stride1: number;
  stride2: number;
  epsilon1: number;
  epsilon2: number;
  relu1: boolean;
  relu2: boolean;
  /** An identity residual block: the output is relu(BN2(conv2(…)) + x) (relu2 must then be false). */
  residual?: boolean;
}

type PairLanes = { xLanes1: Float32Array; yLanes1: Float32Array; xLanes2: Float32Array; yLanes2: Float32Array };

/**
 * conv1 → BN → act → conv2 → BN → act where conv2 reads only conv1's output (a residual block's body,
 * cnn's conv pairs), both on the fused sparse kernels, as one tfjs kernel so that the activation between
 * them never leaves the lane layout: conv1's BatchNorm writes straight into conv2's padded input lanes,
 * and conv2's input gradient goes back to conv1's BatchNorm in lanes. Per pair that saves an NHWC
 * activation written and read back (with two transposes) in each direction. Inputs x, filter1, active1,
 * gamma1, beta1, filter2, active2, gamma2, beta2; outputs [z2, mean1, variance1, mean2, variance2].
 *
 * With `residual` the kernel is a whole identity residual block, z2 = relu(BN2(conv2(…)) + x): the join is
 * applied in the pass that writes z2; its gradient (dz where z2 > 0) is written once in lanes, where
 * conv2's BatchNorm backward reads it without transposing, and is added to x's gradient as conv1's
 * input-gradient rows are written. That replaces three passes over the block's activation (the join, its
 * ReLU backward, the tape's Add of the two gradients of x) and three taped kernels per block.
 */
function registerSparseConvBnPair(addon: NativeAddon): void {
  const geometries = (xShape: readonly number[], filter1: readonly number[], filter2: readonly number[], attrs: SparseConvBnPairAttrs): [number[], number[]] => {
    const g1 = convGeometry(xShape, filter1, { stride: attrs.stride1, padding: attrs.padding });
    const g2 = convGeometry([g1[0], g1[9], g1[10], g1[4]], filter2, { stride: attrs.stride2, padding: attrs.padding });
    return [g1, g2];
  };
  tf.registerKernel({
    kernelName: KERNELS.sparseConvBnPair,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const t = need(inputs, 'x', 'filter1', 'active1', 'gamma1', 'beta1', 'filter2', 'active2', 'gamma2', 'beta2');
      checkPattern(t.filter1, t.active1, 'sparse conv pair (first layer)');
      checkPattern(t.filter2, t.active2, 'sparse conv pair (second layer)');
      const a = attrs as unknown as SparseConvBnPairAttrs;
      const [g1, g2] = geometries(t.x.shape, t.filter1.shape, t.filter2.shape, a);
      const [in1, , out1] = addon.sparseConvLaneSizes(g1);
      const [in2, , out2] = addon.sparseConvLaneSizes(g2);
      const lanes: PairLanes = { xLanes1: bufferPool.allocate(in1), yLanes1: bufferPool.allocate(out1), xLanes2: bufferPool.allocate(in2), yLanes2: bufferPool.allocate(out2) };
      const c1 = g1[4];
      const c2 = g2[4];
      const outShape = [g2[0], g2[9], g2[10], c2];
      if (a.residual && (a.relu2 || !tf.util.arraysEqual(outShape, t.x.shape))) {
        throw new Error(`sparse conv pair: a residual join needs relu2 false and an output of x's shape [${t.x.shape}], got relu2 ${a.relu2} and [${outShape}]`);
      }
      const z = bufferPool.allocate(size(outShape));
      const stats = [bufferPool.allocate(c1), bufferPool.allocate(c1), bufferPool.allocate(c2), bufferPool.allocate(c2)];
      addon.sparseConvBnForward(g1, a.epsilon1, a.relu1, f32(cpu, t.x, 'x'), f32(cpu, t.filter1, 'filter1'), f32(cpu, t.active1, 'active1'),
        f32(cpu, t.gamma1, 'gamma1'), f32(cpu, t.beta1, 'beta1'), null, stats[0], stats[1], lanes.xLanes1, lanes.yLanes1, g2, lanes.xLanes2);
      // With the join, the activation comes after adding x: ReLU on, applied to BN2 + x.
      addon.sparseConvBnForward(g2, a.epsilon2, a.relu2 || a.residual === true, null, f32(cpu, t.filter2, 'filter2'), f32(cpu, t.active2, 'active2'),
        f32(cpu, t.gamma2, 'gamma2'), f32(cpu, t.beta2, 'beta2'), z, stats[2], stats[3], lanes.xLanes2, lanes.yLanes2, null, null,
        a.residual ? f32(cpu, t.x, 'x') : undefined);
      const out = [cpu.makeTensorInfo(outShape, 'float32', z), cpu.makeTensorInfo([c1], 'float32', stats[0]), cpu.makeTensorInfo([c1], 'float32', stats[1]),
        cpu.makeTensorInfo([c2], 'float32', stats[2]), cpu.makeTensorInfo([c2], 'float32', stats[3])];
      keepLanes(z, lanes);
      return out;
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.sparseConvBnPair,
    inputsToSave: ['x', 'filter1', 'active1', 'gamma1', 'beta1', 'filter2', 'active2', 'gamma2', 'beta2'],
    outputsToSave: [true, true, true, true, true],
    gradFunc: (dys, saved, attrs) => {
      const [x, filter1, active1, gamma1, beta1, filter2, active2, gamma2, beta2, z, mean1, variance1, mean2, variance2] = saved;
      const dz = (dys as tf.Tensor[])[0];
      const a = attrs as unknown as SparseConvBnPairAttrs;
      const [g1, g2] = geometries(x.shape, filter1.shape, filter2.shape, a);
      const v = (t: tf.Tensor, name: string): Float32Array => f32(cpuBackend(), t, name);
      // The join's gradient dz ⊙ [z > 0] in conv2's output lanes (= x's shape): read by conv2's BatchNorm
      // backward and added to x's gradient. All of this node's gradient thunks run before the next node's,
      // so a slot per geometry is not overwritten in between.
      const joinGrad = a.residual ? gradLanes.slot(addon, g2, 'pair-join', 2).values : undefined;
      // Both layers' backward passes except conv1's input gradient, once per node, in the order the shared
      // buffers allow: conv2's BatchNorm → dy2 → its filter and input gradients (the latter in lanes) →
      // conv1's BatchNorm → dy1 → its filter gradient.
      const backward = once(() => {
        const lanes = lanesOf<PairLanes>(z, 'sparse conv pair');
        const out = {
          dy1: gradLanes.claim(addon, g1, dz.dataId, 'pair1'),
          dgamma1: bufferPool.allocate(gamma1.size), dbeta1: bufferPool.allocate(gamma1.size), dfilter1: bufferPool.allocate(filter1.size),
          dgamma2: bufferPool.allocate(gamma2.size), dbeta2: bufferPool.allocate(gamma2.size), dfilter2: bufferPool.allocate(filter2.size),
        };
        const dy2 = gradLanes.claim(addon, g2, dz.dataId, 'pair2');
        const dz1 = gradLanes.slot(addon, g1, 'pair-between', 2).values;
        if (joinGrad) addon.reluGradToLanes(g2, v(dz, 'dz'), v(z, 'z'), joinGrad);
        addon.sparseConvBnBackward(g2, a.epsilon2, a.relu2, joinGrad ?? v(dz, 'dz'), joinGrad !== undefined, lanes.yLanes2, v(mean2, 'mean2'),
          v(variance2, 'variance2'), v(gamma2, 'gamma2'), v(beta2, 'beta2'), dy2, out.dgamma2, out.dbeta2);
        addon.sparseConvBackwardWeights(g2, lanes.xLanes2, dy2, v(active2, 'active2'), out.dfilter2);
        addon.sparseConvBackwardData(g2, dy2, v(filter2, 'filter2'), v(active2, 'active2'), dz1, true);
        addon.sparseConvBnBackward(g1, a.epsilon1, a.relu1, dz1, true, lanes.yLanes1, v(mean1, 'mean1'), v(variance1, 'variance1'),
          v(gamma1, 'gamma1'), v(beta1, 'beta1'), out.dy1, out.dgamma1, out.dbeta1);
        addon.sparseConvBackwardWeights(g1, lanes.xLanes1, out.dy1, v(active1, 'active1'), out.dfilter1);
        return out;
      });
      return {
        x: () => {
          const dx = bufferPool.allocate(x.size);
          addon.sparseConvBackwardData(g1, backward().dy1, v(filter1, 'filter1'), v(active1, 'active1'), dx, false, joinGrad);
          return wrap(dx, x.shape);
        },
        filter1: () => wrap(backward().dfilter1, filter1.shape),
        gamma1: () => wrap(backward().dgamma1, gamma1.shape),
        beta1: () => wrap(backward().dbeta1, beta1.shape),
        filter2: () => wrap(backward().dfilter2, filter2.shape),
        gamma2: () => wrap(backward().dgamma2, gamma2.shape),
        beta2: () => wrap(backward().dbeta2, beta2.shape),
        // The patterns are constants of the step (never differentiated).
        active1: () => tf.zerosLike(active1),
        active2: () => tf.zerosLike(active2),
      };
    },
  });
}

// ---- residual blocks in sequence -------------------------------------------------------------------------

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

export interface SparseIdentityBlocksAttrs {
  padding: 'same' | 'valid';
  /** Per block: the first layer's BatchNorm epsilon and ReLU, the second layer's epsilon. */
  epsilon1: number[];
  relu1: boolean[];
  epsilon2: number[];
}

export interface SparseResidualBlocksAttrs extends SparseIdentityBlocksAttrs {
  /**
   * A convolution + BatchNorm (+ ReLU) before the first block (a ResNet's stem): its inputs follow the
   * blocks' (HEAD_INPUTS), its mean and variance follow their statistics.
   */
  head: boolean;
  headStride: number;
  headEpsilon: number;
  headRelu: boolean;
  /** Per block: the first layer's stride (the shortcut's too); 1 for an identity block. */
  stride: number[];
  /** Per block: whether it has a 1×1 shortcut with BatchNorm (a projection block; else the identity). */
  projection: boolean[];
  /** Per block: the shortcut's BatchNorm epsilon (unused for identity blocks). */
  epsilonS: number[];
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
function residualBlockGeometries(kernel: string, xShape: readonly number[], a: { padding: 'same' | 'valid'; stride?: number[]; projection?: boolean[] },
  blocks: number, input: (name: BlockInput, block: number) => tf.TensorInfo): BlockGeometry[] {
  let shape = [...xShape];
  return Array.from({ length: blocks }, (_, i) => {
    const [filter1, filter2] = [input('filter1', i), input('filter2', i)];
    checkPattern(filter1, input('active1', i), `${kernel}, block ${i} (first layer)`);
    checkPattern(filter2, input('active2', i), `${kernel}, block ${i} (second layer)`);
    const stride = a.stride?.[i] ?? 1;
    const g1 = convGeometry(shape, filter1.shape, { stride, padding: a.padding });
    const g2 = convGeometry([g1[0], g1[9], g1[10], g1[4]], filter2.shape, { stride: 1, padding: a.padding });
    const outShape = [g2[0], g2[9], g2[10], g2[4]];
    let shortcut: BlockGeometry['shortcut'];
    if (a.projection?.[i]) {
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
 * The forward pass of a run of residual blocks, shared by training and evaluation (identity blocks only):
 * each block's first layer writes the second's input lanes; a projection block's shortcut, run as the first
 * layer's geometry on the same input lanes, writes its BatchNorm output into a buffer of the second layer's
 * input-lane layout; the join (ReLU after adding the block's input, read from its input lanes, or the
 * shortcut's output) goes to the next block's input lanes, or for the last block to z (NHWC).
 */
function residualBlocksForward(addon: NativeAddon, a: SparseIdentityBlocksAttrs & Partial<SparseResidualBlocksAttrs>, x: Float32Array | null, z: Float32Array,
  geometry: readonly BlockGeometry[], arraysOf: (block: number) => BlockArrays, inference: boolean): void {
  const blocks = geometry.map((_, i) => arraysOf(i));
  blocks.forEach(({ weights: w, stats, lanes }, i) => {
    const { g1, g2, shortcut } = geometry[i];
    const next = blocks[i + 1];
    addon.sparseConvBnForward(g1, a.epsilon1[i], a.relu1[i], i === 0 ? x : null, w('filter1'), w('active1'), w('gamma1'), w('beta1'), null, stats[0], stats[1],
      lanes.xLanes1, lanes.yLanes1, g2, lanes.xLanes2, null, null, null, inference);
    let skip = lanes.xLanes1;
    let skipGeometry = g1;
    if (shortcut) {
      skip = gradLanes.slot(addon, g2, 'shortcut-out', 0).values;
      skipGeometry = g2;
      addon.sparseConvBnForward(shortcut.gS, a.epsilonS![i], false, null, lanes.filterS!, lanes.activeS!, w('gammaS'), w('betaS'), null, stats[4], stats[5],
        lanes.xLanes1, lanes.yLanesS!, g2, skip, null, null, null, inference);
    }
    addon.sparseConvBnForward(g2, a.epsilon2[i], true, null, w('filter2'), w('active2'), w('gamma2'), w('beta2'), next ? null : z, stats[2], stats[3],
      lanes.xLanes2, lanes.yLanes2, next ? geometry[i + 1].g1 : null, next ? next.lanes.xLanes1 : null, null, skip, skipGeometry, inference);
  });
}

/** Where each block's inputs start among the kernel's inputs (x is input 0). */
function blockOffsets(projection: readonly boolean[]): number[] {
  const offsets: number[] = [];
  let at = 1;
  for (const p of projection) {
    offsets.push(at);
    at += IDENTITY_BLOCK_INPUTS.length + (p ? SHORTCUT_INPUTS.length : 0);
  }
  offsets.push(at);
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
 * Inputs (an array, so any number of blocks): x, then per block filter1, active1, gamma1, beta1, filter2,
 * active2, gamma2, beta2 (and filterS, activeS, gammaS, betaS for a projection block); outputs [z, then per
 * block mean1, variance1, mean2, variance2 (and meanS, varianceS)].
 */
function registerSparseResidualBlocks(addon: NativeAddon): void {
  const layout = (inputCount: number, a: SparseResidualBlocksAttrs): number[] => {
    const offsets = blockOffsets(a.projection);
    const blocks = a.projection.length;
    if (blocks < 1 || blocks > MAX_RESIDUAL_BLOCKS || offsets[blocks] + (a.head ? HEAD_INPUTS.length : 0) !== inputCount) {
      throw new Error(`residual blocks: expected x, 1-${MAX_RESIDUAL_BLOCKS} blocks of ${IDENTITY_BLOCK_INPUTS.length} inputs (${IDENTITY_BLOCK_INPUTS.length + SHORTCUT_INPUTS.length} with a shortcut) as the attributes list ${blocks}${a.head ? ` and the head's ${HEAD_INPUTS.length}` : ''}, got ${inputCount} inputs`);
    }
    return offsets;
  };
  tf.registerKernel({
    kernelName: KERNELS.sparseResidualBlocks,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const a = attrs as unknown as SparseResidualBlocksAttrs;
      const all = Object.values(inputs) as tf.TensorInfo[];
      const offsets = layout(all.length, a);
      const x = all[0];
      const input = (name: BlockInput, i: number): tf.TensorInfo => all[inputIndex(offsets, name, i)];
      const v = (name: BlockInput, i: number): Float32Array => f32(cpu, input(name, i), `${name} of block ${i}`);
      const headInput = (name: HeadInput): tf.TensorInfo => all[offsets[a.projection.length] + HEAD_INPUTS.indexOf(name)];
      const gH = a.head ? headGeometry(x.shape, headInput('filterH'), headInput('activeH'), a) : undefined;
      const geometry = residualBlockGeometries('residual blocks', gH ? [gH[0], gH[9], gH[10], gH[4]] : x.shape, a, a.projection.length, input);
      const lanes: BlockLanes[] = geometry.map(({ g1, g2, shortcut }, i) => {
        const [in1, , out1] = addon.sparseConvLaneSizes(g1);
        const [in2, , out2] = addon.sparseConvLaneSizes(g2);
        const pair = { xLanes1: bufferPool.allocate(in1), yLanes1: bufferPool.allocate(out1), xLanes2: bufferPool.allocate(in2), yLanes2: bufferPool.allocate(out2) };
        if (!shortcut) return pair;
        const kw = g1[6];
        return {
          ...pair, yLanesS: bufferPool.allocate(addon.sparseConvLaneSizes(shortcut.gS)[2]),
          filterS: embedAtTap(v('filterS', i), kw, shortcut.tap, bufferPool.allocate(shortcut.embeddedSize)),
          activeS: embedAtTap(v('activeS', i), kw, shortcut.tap, bufferPool.allocate(shortcut.embeddedSize)),
        };
      });
      const { g2: last } = geometry[geometry.length - 1];
      const outShape = [last[0], last[9], last[10], last[4]];
      const z = bufferPool.allocate(size(outShape));
      const stats = geometry.map(({ g1, g2, shortcut }) => [g1[4], g1[4], g2[4], g2[4], ...(shortcut ? [g2[4], g2[4]] : [])].map((c) => bufferPool.allocate(c)));
      const kept: Record<string, Float32Array> = Object.fromEntries(lanes.flatMap((l, i) => Object.entries(l).map(([k, buffer]) => [`${k}${i}`, buffer])));
      if (gH) {
        // The head writes the first block's input lanes.
        const [inH, , outH] = addon.sparseConvLaneSizes(gH);
        kept.headX = bufferPool.allocate(inH);
        kept.headY = bufferPool.allocate(outH);
        stats.push([gH[4], gH[4]].map((c) => bufferPool.allocate(c)));
        const h = (name: HeadInput): Float32Array => f32(cpu, headInput(name), `${name} of the head`);
        addon.sparseConvBnForward(gH, a.headEpsilon, a.headRelu, f32(cpu, x, 'x'), h('filterH'), h('activeH'), h('gammaH'), h('betaH'), null,
          stats[stats.length - 1][0], stats[stats.length - 1][1], kept.headX, kept.headY, geometry[0].g1, lanes[0].xLanes1);
      }
      residualBlocksForward(addon, a, gH ? null : f32(cpu, x, 'x'), z, geometry, (i) => ({ weights: (name) => v(name, i), stats: stats[i], lanes: lanes[i] }), false);
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
      const offsets = blockOffsets(a.projection);
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
      const geometry = residualBlockGeometries('residual blocks gradient', gH ? [gH[0], gH[9], gH[10], gH[4]] : x.shape, a, blocks, input);
      // The head's mean and variance follow every block's statistics.
      const headStat = (k: number): Float32Array => v(saved[statsStart[blocks - 1] + statCount(a.projection[blocks - 1]) + k], 'batch statistics of the head');
      const lanes = (i: number, name: keyof BlockLanes, kept: Record<string, Float32Array>): Float32Array => kept[`${name}${i}`];
      // Every gradient but x's, last block first. The gradient at each block's output (after its join's
      // ReLU) alternates between two lane buffers: block i's is read while block i − 1's is written. All of
      // this node's thunks run before the next node's, so the shared slots are not overwritten in between.
      const backward = once(() => {
        const kept = lanesOf<Record<string, Float32Array>>(z, 'residual blocks');
        const grads = geometry.map((_, i) => Object.fromEntries([...IDENTITY_BLOCK_INPUTS, ...(a.projection[i] ? SHORTCUT_INPUTS : [])]
          .filter((name) => !name.startsWith('active')).map((name) => [name, bufferPool.allocate(input(name, i).size)])) as Record<string, Float32Array>);
        const joinBuffer = (i: number): Float32Array => gradLanes.slot(addon, geometry[i].g2, `blocks-join-${i % 2}`, 2).values;
        let join = joinBuffer(blocks - 1);
        addon.reluGradToLanes(geometry[blocks - 1].g2, v(dz, 'dz'), v(z, 'z'), join);
        for (let i = blocks - 1; ; i--) {
          const { g1, g2, shortcut } = geometry[i];
          const d = grads[i];
          const dy2 = gradLanes.claim(addon, g2, dz.dataId, 'blocks2');
          const dz1 = gradLanes.slot(addon, g1, 'blocks-between', 2).values;
          const dy1 = gradLanes.claim(addon, g1, dz.dataId, 'blocks1');
          addon.sparseConvBnBackward(g2, a.epsilon2[i], false, join, true, lanes(i, 'yLanes2', kept), stat(i, 2), stat(i, 3), w('gamma2', i), w('beta2', i),
            dy2, d.gamma2, d.beta2);
          addon.sparseConvBackwardWeights(g2, lanes(i, 'xLanes2', kept), dy2, w('active2', i), d.filter2);
          addon.sparseConvBackwardData(g2, dy2, w('filter2', i), w('active2', i), dz1, true);
          addon.sparseConvBnBackward(g1, a.epsilon1[i], a.relu1[i], dz1, true, lanes(i, 'yLanes1', kept), stat(i, 0), stat(i, 1), w('gamma1', i),
            w('beta1', i), dy1, d.gamma1, d.beta1);
          addon.sparseConvBackwardWeights(g1, lanes(i, 'xLanes1', kept), dy1, w('active1', i), d.filter1);
          // The block input's gradient besides conv1's: the identity's (the join's gradient itself) or the shortcut's, gathered in lanes.
          let besides = join;
          if (shortcut) {
            const dyS = gradLanes.claim(addon, shortcut.gS, dz.dataId, 'blocksS');
            addon.sparseConvBnBackward(shortcut.gS, a.epsilonS[i], false, join, true, lanes(i, 'yLanesS', kept), stat(i, 4), stat(i, 5), w('gammaS', i),
              w('betaS', i), dyS, d.gammaS, d.betaS);
            // The shortcut's filter gradient at its tap of the window is the 1×1 filter's gradient.
            const embedded = gradLanes.scratch('shortcut-dfilter', shortcut.embeddedSize);
            addon.sparseConvBackwardWeights(shortcut.gS, lanes(i, 'xLanes1', kept), dyS, lanes(i, 'activeS', kept), embedded);
            const at = (shortcut.tap[0] * g1[6] + shortcut.tap[1]) * d.filterS.length;
            d.filterS.set(embedded.subarray(at, at + d.filterS.length));
            besides = gradLanes.scratch('shortcut-dx', inputInLanesSize(addon, g1));
            addon.sparseConvBackwardData(shortcut.gS, dyS, lanes(i, 'filterS', kept), lanes(i, 'activeS', kept), besides, true);
          }
          if (i === 0) {
            if (!gH) return { grads, dy1, besides };
            // The head's output gradient (the first block's input gradient plus its shortcut's) in lanes, then its BatchNorm and filter gradients.
            const h = (name: HeadInput): Float32Array => v(headInput(name), `${name} of the head`);
            const dzH = gradLanes.slot(addon, gH, 'head-between', 2).values;
            addon.sparseConvBackwardData(g1, dy1, w('filter1', 0), w('active1', 0), dzH, true, besides);
            const head = { dy: gradLanes.claim(addon, gH, dz.dataId, 'head'), filterH: bufferPool.allocate(headInput('filterH').size),
              gammaH: bufferPool.allocate(headInput('gammaH').size), betaH: bufferPool.allocate(headInput('betaH').size) };
            addon.sparseConvBnBackward(gH, a.headEpsilon, a.headRelu, dzH, true, kept.headY, headStat(0), headStat(1), h('gammaH'), h('betaH'), head.dy,
              head.gammaH, head.betaH);
            addon.sparseConvBackwardWeights(gH, kept.headX, head.dy, h('activeH'), head.filterH);
            return { grads, dy1, besides, head };
          }
          // The previous block's join gradient: this block's input gradient plus its shortcut's, kept
          // where the previous join's output (this block's input, in its input lanes) was positive.
          const previous = joinBuffer(i - 1);
          addon.sparseConvBackwardData(g1, dy1, w('filter1', i), w('active1', i), previous, true, besides, lanes(i, 'xLanes1', kept));
          join = previous;
        }
      });
      const result: Record<string, () => tf.Tensor> = {
        0: () => {
          const b = backward();
          const dx = bufferPool.allocate(x.size);
          if (gH && b.head) addon.sparseConvBackwardData(gH, b.head.dy, v(headInput('filterH'), 'filterH'), v(headInput('activeH'), 'activeH'), dx);
          else addon.sparseConvBackwardData(geometry[0].g1, b.dy1, w('filter1', 0), w('active1', 0), dx, false, b.besides);
          return wrap(dx, x.shape);
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
 * The identity-blocks kernel's forward pass in evaluation: BatchNorm with the running statistics, nothing
 * kept for a gradient (the ops use it only where none is recorded). Inputs x, then per block the training
 * kernel's eight and mean1, variance1, mean2, variance2; output z. The lane buffers are scratch kept per
 * geometry across calls: each block's input lanes alternate between two, read as the block's skip while
 * its join writes the next block's.
 */
function registerSparseIdentityBlocksInfer(addon: NativeAddon): void {
  const perBlock = IDENTITY_BLOCK_INPUTS.length + 4;
  tf.registerKernel({
    kernelName: KERNELS.sparseIdentityBlocksInfer,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const a = attrs as unknown as SparseIdentityBlocksAttrs;
      const all = Object.values(inputs) as tf.TensorInfo[];
      const blocks = (all.length - 1) / perBlock;
      if (!Number.isInteger(blocks) || blocks < 1) throw new Error(`identity blocks (evaluation): expected x and blocks of ${perBlock} inputs, got ${all.length} inputs`);
      const x = all[0];
      const v = (i: number, k: number, name: string): Float32Array => f32(cpu, all[1 + i * perBlock + k], `${name} of block ${i}`);
      const identityInput = (name: BlockInput): number => (IDENTITY_BLOCK_INPUTS as readonly string[]).indexOf(name);
      const input = (name: BlockInput, i: number): tf.TensorInfo => all[1 + i * perBlock + identityInput(name)];
      const w = (name: BlockInput, i: number): Float32Array => v(i, identityInput(name), name);
      const stat = (i: number, k: number): Float32Array => v(i, IDENTITY_BLOCK_INPUTS.length + k, 'running statistics');
      const geometry = residualBlockGeometries('identity blocks (evaluation)', x.shape, a, blocks, input);
      const z = bufferPool.allocate(size(x.shape));
      // Block i's input lanes alternate between two buffers: read as its skip while its join writes the next block's.
      residualBlocksForward(addon, a, f32(cpu, x, 'x'), z, geometry, (i) => {
        const { g1, g2 } = geometry[i];
        const lanes: PairLanes = {
          xLanes1: gradLanes.slot(addon, g1, `infer-blocks-${i % 2}`, 0).values, yLanes1: gradLanes.slot(addon, g1, 'infer-blocks-y1', 2).values,
          xLanes2: gradLanes.slot(addon, g2, 'infer-blocks-between', 0).values, yLanes2: gradLanes.slot(addon, g2, 'infer-blocks-y2', 2).values,
        };
        return { weights: (name) => w(name, i), stats: [0, 1, 2, 3].map((k) => stat(i, k)), lanes };
      }, true);
      return cpu.makeTensorInfo([...x.shape], 'float32', z);
    },
  });
}

// ---- BatchNorm (+ ReLU) -----------------------------------------------------------------------------

interface BatchNormAttrs {
  epsilon: number;
  relu: boolean;
}

function registerBatchNorm(addon: NativeAddon): void {
  // Training mode: outputs [z, batch mean, batch (biased) variance].
  tf.registerKernel({
    kernelName: KERNELS.batchNormTrain,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x, gamma, beta } = need(inputs, 'x', 'gamma', 'beta');
      const { epsilon, relu } = attrs as unknown as BatchNormAttrs;
      const channels = x.shape[x.shape.length - 1];
      const z = bufferPool.allocate(size(x.shape));
      const mean = bufferPool.allocate(channels);
      const variance = bufferPool.allocate(channels);
      addon.batchNormTrainForward(z.length / channels, channels, epsilon, relu, f32(cpu, x, 'x'), f32(cpu, gamma, 'gamma'),
        f32(cpu, beta, 'beta'), z, mean, variance);
      return [cpu.makeTensorInfo(x.shape, 'float32', z), cpu.makeTensorInfo([channels], 'float32', mean),
        cpu.makeTensorInfo([channels], 'float32', variance)];
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.batchNormTrain,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [true, true, true],
    gradFunc: (dys, saved, attrs) => {
      const [x, gamma, z, mean, variance] = saved;
      const dz = (dys as tf.Tensor[])[0];
      const { epsilon, relu } = attrs as unknown as BatchNormAttrs;
      const backward = once(() => {
        const cpu = cpuBackend();
        const channels = gamma.size;
        const out = { dx: bufferPool.allocate(x.size), dgamma: bufferPool.allocate(channels), dbeta: bufferPool.allocate(channels) };
        addon.batchNormTrainBackward(x.size / channels, channels, epsilon, relu, f32(cpu, dz, 'dz'), f32(cpu, z, 'z'), f32(cpu, x, 'x'),
          f32(cpu, mean, 'mean'), f32(cpu, variance, 'variance'), f32(cpu, gamma, 'gamma'), out.dx, out.dgamma, out.dbeta);
        return out;
      });
      return {
        x: () => wrap(backward().dx, x.shape),
        gamma: () => wrap(backward().dgamma, gamma.shape),
        beta: () => wrap(backward().dbeta, gamma.shape),
      };
    },
  });

  // Evaluation mode: normalises with the given running statistics.
  tf.registerKernel({
    kernelName: KERNELS.batchNormInfer,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x, gamma, beta, mean, variance } = need(inputs, 'x', 'gamma', 'beta', 'mean', 'variance');
      const { epsilon, relu } = attrs as unknown as BatchNormAttrs;
      const channels = x.shape[x.shape.length - 1];
      const z = bufferPool.allocate(size(x.shape));
      addon.batchNormInferForward(z.length / channels, channels, epsilon, relu, f32(cpu, x, 'x'), f32(cpu, mean, 'mean'),
        f32(cpu, variance, 'variance'), f32(cpu, gamma, 'gamma'), f32(cpu, beta, 'beta'), z);
      return cpu.makeTensorInfo(x.shape, 'float32', z);
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.batchNormInfer,
    inputsToSave: ['x', 'gamma', 'mean', 'variance'],
    outputsToSave: [true],
    gradFunc: (dz, saved, attrs) => {
      const [x, gamma, mean, variance, z] = saved;
      const { epsilon, relu } = attrs as unknown as BatchNormAttrs;
      const backward = once(() => {
        const cpu = cpuBackend();
        const channels = gamma.size;
        const out = { dx: bufferPool.allocate(x.size), dgamma: bufferPool.allocate(channels), dbeta: bufferPool.allocate(channels) };
        addon.batchNormInferBackward(x.size / channels, channels, epsilon, relu, f32(cpu, dz as tf.Tensor, 'dz'), f32(cpu, z, 'z'),
          f32(cpu, x, 'x'), f32(cpu, mean, 'mean'), f32(cpu, variance, 'variance'), f32(cpu, gamma, 'gamma'), out.dx, out.dgamma, out.dbeta);
        return out;
      });
      // Running statistics are constants here; their gradient is zero (they are never trained).
      return {
        x: () => wrap(backward().dx, x.shape),
        gamma: () => wrap(backward().dgamma, gamma.shape),
        beta: () => wrap(backward().dbeta, gamma.shape),
        mean: () => tf.zerosLike(mean),
        variance: () => tf.zerosLike(variance),
      };
    },
  });
}

// ---- residual join and pooling ------------------------------------------------------------------------

function registerPointwise(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.addRelu,
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend }) => {
      const cpu = cpuBackend(backend);
      const { a, b } = need(inputs, 'a', 'b');
      if (!tf.util.arraysEqual(a.shape, b.shape)) throw new Error(`addRelu: shapes ${a.shape} and ${b.shape} differ`);
      const z = bufferPool.allocate(size(a.shape));
      addon.addRelu(z.length, f32(cpu, a, 'a'), f32(cpu, b, 'b'), z);
      return cpu.makeTensorInfo(a.shape, 'float32', z);
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.addRelu,
    outputsToSave: [true],
    gradFunc: (dz, saved) => {
      const [z] = saved;
      // Both inputs get the same gradient: compute it once; a second request gets a clone (shared data).
      const masked = once(() => {
        const cpu = cpuBackend();
        const g = bufferPool.allocate(z.size);
        addon.reluBackward(g.length, f32(cpu, dz as tf.Tensor, 'dz'), f32(cpu, z, 'z'), g);
        return wrap(g, z.shape);
      });
      let handedOut = false;
      const give = (): tf.Tensor => {
        const g = masked();
        if (!handedOut) {
          handedOut = true;
          return g;
        }
        return g.clone();
      };
      return { a: give, b: give };
    },
  });

  tf.registerKernel({
    kernelName: KERNELS.maxPool2,
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x } = need(inputs, 'x');
      const [n, h, w, c] = x.shape;
      const outShape = [n, Math.floor(h / 2), Math.floor(w / 2), c];
      const y = bufferPool.allocate(size(outShape));
      addon.maxPool2Forward(n, h, w, c, f32(cpu, x, 'x'), y);
      return cpu.makeTensorInfo(outShape, 'float32', y);
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.maxPool2,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return {
        x: () => {
          const cpu = cpuBackend();
          const [n, h, w, c] = x.shape as number[];
          const dx = bufferPool.allocate(x.size);
          addon.maxPool2Backward(n, h, w, c, f32(cpu, x, 'x'), f32(cpu, dy as tf.Tensor, 'dy'), dx);
          return wrap(dx, x.shape);
        },
      };
    },
  });

  tf.registerKernel({
    kernelName: KERNELS.globalAvgPool,
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x } = need(inputs, 'x');
      const [n, h, w, c] = x.shape;
      const y = bufferPool.allocate(n * c);
      addon.globalAvgPoolForward(n, h, w, c, f32(cpu, x, 'x'), y);
      return cpu.makeTensorInfo([n, c], 'float32', y);
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.globalAvgPool,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return {
        x: () => {
          const [n, h, w, c] = x.shape as number[];
          const dx = bufferPool.allocate(x.size);
          addon.globalAvgPoolBackward(n, h, w, c, f32(cpuBackend(), dy as tf.Tensor, 'dy'), dx);
          return wrap(dx, x.shape);
        },
      };
    },
  });
}

/**
 * The cpu backend's Add, Sub and Mul for float32 tensors of the same shape, or a tensor and a single
 * value, run in the addon. tfjs's gradient tape sums the gradients of every tensor used twice (each
 * residual block input) with Add, and the optimiser and the mask multiply are chains of these ops on
 * every weight; in JavaScript the same-shape loop costs ~4 ns per element and the scalar-broadcast one
 * ten times more, which made the optimiser slower than mlp's whole forward and backward pass.
 * IEEE float32 results are identical either way (JavaScript's double result of one +, − or × of two
 * float32 values rounds to the same float32), so results are bitwise unchanged; other shapes and
 * dtypes still go to the stock kernels.
 */
const NATIVE_ARITHMETIC_MIN_SIZE = 256;
const ARITHMETIC = { Add: 0, Sub: 1, Multiply: 2 } as const;

function accelerateCpuArithmetic(addon: NativeAddon): void {
  for (const [kernelName, op] of Object.entries(ARITHMETIC)) {
    const stock = tf.getKernel(kernelName, 'cpu');
    if (!stock) continue;
    tf.unregisterKernel(kernelName, 'cpu');
    tf.registerKernel({
      kernelName,
      backendName: 'cpu',
      kernelFunc: (args) => {
        const { a, b } = args.inputs;
        if (!a || !b || a.dtype !== 'float32' || b.dtype !== 'float32') return stock.kernelFunc(args);
        const aSize = tf.util.sizeFromShape(a.shape);
        const bSize = tf.util.sizeFromShape(b.shape);
        // Same shape, or one side a single value whose rank does not exceed the other's.
        const shape = tf.util.arraysEqual(a.shape, b.shape) ? a.shape
          : bSize === 1 && b.shape.length <= a.shape.length ? a.shape
            : aSize === 1 && a.shape.length <= b.shape.length ? b.shape : undefined;
        if (!shape || size(shape) < NATIVE_ARITHMETIC_MIN_SIZE) return stock.kernelFunc(args);
        const cpu = cpuBackend(args.backend);
        // A float32 tensor may still hold another array type (tfjs's Cast from bool keeps its bytes).
        if (!(cpu.data.get(a.dataId).values instanceof Float32Array) || !(cpu.data.get(b.dataId).values instanceof Float32Array)) return stock.kernelFunc(args);
        const z = bufferPool.allocate(size(shape));
        addon.binary(op, z.length, f32(cpu, a, 'a'), f32(cpu, b, 'b'), z);
        return cpu.makeTensorInfo(shape, 'float32', z);
      },
    });
  }
}

// ---- optimiser ------------------------------------------------------------------------------------------

export interface SgdStepAttrs {
  lr: number;
  momentum: number;
  /** 0 for parameters without weight decay. */
  weightDecay: number;
  nesterov: boolean;
}

/**
 * One SGD-momentum update of one parameter: inputs w, buf, grad and optionally mask and gradScale (grad
 * is then ∂L/∂W_eff and grad ⊙ gradScale the weight's gradient); outputs [w', buf'].
 * Replaces src/train/optimizer.ts's chain of up to 9 tfjs ops per parameter with one kernel (the chain's
 * per-op overhead was ~10% of a resnet20 step); the results are bitwise the chain's. Not differentiable.
 */
function registerSgd(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.sgdMomentumStep,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { w, buf, grad } = need(inputs, 'w', 'buf', 'grad');
      const { mask, gradScale } = inputs;
      for (const [name, t] of [['buf', buf], ['grad', grad], ['mask', mask], ['gradScale', gradScale]] as const) {
        if (t && !tf.util.arraysEqual(t.shape, w.shape)) throw new Error(`sgd step: ${name} has shape [${t.shape}], w has [${w.shape}]`);
      }
      const { lr, momentum, weightDecay, nesterov } = attrs as unknown as SgdStepAttrs;
      const n = size(w.shape);
      const wOut = bufferPool.allocate(n);
      const bufOut = bufferPool.allocate(n);
      addon.sgdMomentumStep(n, lr, momentum, weightDecay, nesterov, f32(cpu, w, 'w'), f32(cpu, buf, 'buf'), f32(cpu, grad, 'grad'),
        mask ? f32(cpu, mask, 'mask') : null, wOut, bufOut, gradScale ? f32(cpu, gradScale, 'gradScale') : null);
      return [cpu.makeTensorInfo(w.shape, 'float32', wOut), cpu.makeTensorInfo(w.shape, 'float32', bufOut)];
    },
  });
}

// ---- dense and loss ---------------------------------------------------------------------------------------

function registerDense(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.dense,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x, w, b } = need(inputs, 'x', 'w', 'b');
      const [batch, inSize] = x.shape;
      const [wIn, outSize] = w.shape;
      if (wIn !== inSize || b.shape[0] !== outSize) throw new Error(`dense: x ${x.shape}, w ${w.shape} and b ${b.shape} do not fit`);
      const y = bufferPool.allocate(batch * outSize);
      addon.denseForward(batch, inSize, outSize, f32(cpu, x, 'x'), f32(cpu, w, 'w'), f32(cpu, b, 'b'), Boolean(attrs?.relu), y);
      return cpu.makeTensorInfo([batch, outSize], 'float32', y);
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.dense,
    inputsToSave: ['x', 'w'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, w, y] = saved;
      const [batch, inSize] = x.shape as number[];
      const outSize = (w.shape as number[])[1];
      // The gradient at the pre-activation, shared by all three inputs.
      const g = once(() => {
        const cpu = cpuBackend();
        const upstream = f32(cpu, dy as tf.Tensor, 'dy');
        if (!attrs?.relu) return upstream;
        const masked = bufferPool.allocate(upstream.length);
        addon.reluBackward(masked.length, upstream, f32(cpu, y, 'y'), masked);
        return masked;
      });
      return {
        x: () => {
          const dx = bufferPool.allocate(x.size);
          addon.denseBackwardData(batch, inSize, outSize, g(), f32(cpuBackend(), w, 'w'), dx);
          return wrap(dx, x.shape);
        },
        w: () => {
          const dw = bufferPool.allocate(w.size);
          addon.denseBackwardWeights(batch, inSize, outSize, f32(cpuBackend(), x, 'x'), g(), dw);
          return wrap(dw, w.shape);
        },
        b: () => {
          const db = bufferPool.allocate(outSize);
          addon.columnSums(batch, outSize, g(), db);
          return wrap(db, [outSize]);
        },
      };
    },
  });

  tf.registerKernel({
    kernelName: KERNELS.softmaxCrossEntropy,
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend }) => {
      const cpu = cpuBackend(backend);
      const { logits, labels } = need(inputs, 'logits', 'labels');
      const [rows, classes] = logits.shape;
      const loss = addon.softmaxCrossEntropy(rows, classes, f32(cpu, logits, 'logits'), labelValues(cpu, labels, rows));
      return cpu.makeTensorInfo([], 'float32', Float32Array.of(loss));
    },
  });
  tf.registerGradient({
    kernelName: KERNELS.softmaxCrossEntropy,
    inputsToSave: ['logits', 'labels'],
    gradFunc: (dy, saved) => {
      const [logits, labels] = saved;
      return {
        logits: () => {
          const cpu = cpuBackend();
          const [rows, classes] = logits.shape as number[];
          const scale = f32(cpu, dy as tf.Tensor, 'dy')[0];
          const dlogits = bufferPool.allocate(logits.size);
          addon.softmaxCrossEntropyBackward(rows, classes, f32(cpu, logits, 'logits'), labelValues(cpu, labels, rows), scale, dlogits);
          return wrap(dlogits, logits.shape);
        },
        // Class indices are not differentiable.
        labels: () => tf.zerosLike(labels),
      };
    },
  });
}

/** Integer class labels as an Int32Array, whatever numeric dtype the labels tensor has. */
function labelValues(backend: CpuBackend, labels: tf.TensorInfo, rows: number): Int32Array {
  if (labels.shape.length !== 1 || labels.shape[0] !== rows) {
    throw new Error(`crossEntropy: labels must have shape [${rows}], got [${labels.shape}]`);
  }
  const values = backend.data.get(labels.dataId).values;
  if (values instanceof Int32Array) return values;
  if (values instanceof Float32Array || values instanceof Uint8Array) {
    const out = new Int32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      if (!Number.isInteger(values[i])) throw new Error(`crossEntropy: label ${values[i]} at row ${i} is not an integer`);
      out[i] = values[i];
    }
    return out;
  }
  throw new Error(`crossEntropy: labels of dtype ${labels.dtype} are not supported`);
}
