import * as tf from '@tensorflow/tfjs';
import { bufferPool } from './buffer-pool';
import type { NativeAddon } from './native-addon';

// What the native kernels' tfjs registrations share (native-kernels.ts, residual-blocks-kernels.ts): the
// kernel names, access to the cpu backend's arrays, convolution geometry, and the lane buffers kept
// between a kernel's forward pass and its gradient.

/** The names the native kernels are registered under. */
export const KERNELS = {
  conv2d: 'CiglConv2D',
  sparseConv2d: 'CiglSparseConv2D',
  sparseConvBn: 'CiglSparseConvBn',
  sparseConvBnInfer: 'CiglSparseConvBnInfer',
  sparseConvBnPair: 'CiglSparseConvBnPair',
  sparseResidualBlocks: 'CiglSparseResidualBlocks',
  sparseResidualBlocksInfer: 'CiglSparseResidualBlocksInfer',
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
export interface CpuBackend extends tf.KernelBackend {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export function cpuBackend(backend: unknown = tf.backend()): CpuBackend {
  const candidate = backend as Partial<CpuBackend>;
  if (typeof candidate.makeTensorInfo !== 'function' || typeof candidate.data?.get !== 'function' || tf.getBackend() !== 'cpu') {
    throw new Error(`cigl native kernels run on the tfjs 'cpu' backend, but the active backend is '${tf.getBackend()}'`);
  }
  return candidate as CpuBackend;
}

/** The named kernel inputs, each required. */
export function need<K extends string>(inputs: tf.NamedTensorInfoMap, ...names: K[]): Record<K, tf.TensorInfo> {
  const out = {} as Record<K, tf.TensorInfo>;
  for (const name of names) {
    const t = inputs[name];
    if (!t) throw new Error(`cigl native kernel: missing input '${name}'`);
    out[name] = t;
  }
  return out;
}

/** The backend's own Float32Array of a tensor (no copy). */
export function f32(backend: CpuBackend, t: tf.TensorInfo, name: string): Float32Array {
  const values = backend.data.get(t.dataId).values;
  if (t.dtype !== 'float32' || !(values instanceof Float32Array)) {
    throw new Error(`cigl native kernel input '${name}' must be a float32 tensor, got ${t.dtype}`);
  }
  return values;
}

/** Wraps a freshly written array as a tensor; the cpu backend stores it as is. */
export const wrap = (values: Float32Array, shape: readonly number[]): tf.Tensor => tf.tensor(values, shape as number[], 'float32');

/** Evaluates `compute` at most once, for gradient thunks that share one native backward call. */
export function once<T>(compute: () => T): () => T {
  let result: T | undefined;
  return () => (result ??= compute());
}

/**
 * Whether a kernel's input 0 (x) gets a gradient in this backward pass. tfjs calls the gradient thunks of
 * the inputs that need one in input order, so x's runs first or not at all: `wanted()`, called by the
 * shared backward pass, is true only after `ask()` (x's thunk). Then what only x's gradient reads (the
 * first convolution's dy) need not be kept when x is the network's input; x's gradient asked for after
 * the others is refused, not computed from a dy that was never stored.
 */
export function inputGradientOrder(kernel: string): { ask(): void; wanted(): boolean } {
  let state: 'open' | 'asked' | 'skipped' = 'open';
  return {
    ask() {
      if (state === 'skipped') throw new Error(`${kernel}: x's gradient asked for after the other inputs' (tfjs asks for input 0's first), so the dy it reads was not kept`);
      state = 'asked';
    },
    wanted() {
      if (state === 'open') state = 'skipped';
      return state === 'asked';
    },
  };
}

export interface ConvAttrs {
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

/** The NHWC shape of a convolution's output, from its geometry. */
export const outputShape = (g: readonly number[]): number[] => [g[0], g[9], g[10], g[4]];
/** The NHWC shape after a 2×2 max pool at stride 2 (an odd last row or column dropped). */
export const pooledShape = ([n, h, w, c]: readonly number[]): number[] => [n, Math.floor(h / 2), Math.floor(w / 2), c];

/**
 * Lane buffers a kernel's gradient reads (its input and output in the batch-innermost layout), kept with
 * the kernel's first output rather than returned as outputs: tfjs hands every output outside the
 * gradient path a zero-filled dy, which for 10 MB lane buffers per layer cost more than the sparse
 * convolutions saved. The gradient saves that output, so the buffers live exactly as long as the
 * gradient may need them, and return to the pool with it (BufferPool.attach).
 */
export const laneCopies = new WeakMap<Float32Array, Readonly<Record<string, Float32Array>>>();

export function keepLanes(owner: Float32Array, lanes: Readonly<Record<string, Float32Array>>): void {
  for (const buffer of Object.values(lanes)) bufferPool.attach(owner, buffer);
  laneCopies.set(owner, lanes);
}

export function lanesOf<T extends Readonly<Record<string, Float32Array>>>(owner: tf.TensorInfo, kernel: string): T {
  const found = laneCopies.get(f32(cpuBackend(), owner, 'output'));
  if (!found) throw new Error(`${kernel} gradient: the lane copies are gone (was the output overwritten?)`);
  return found as T;
}

/** An active pattern must have its filter's shape. */
export function checkPattern(filter: tf.TensorInfo, active: tf.TensorInfo, kernel: string): void {
  if (!tf.util.arraysEqual(filter.shape, active.shape)) throw new Error(`${kernel}: active pattern ${active.shape} does not match filter ${filter.shape}`);
}

/**
 * One lane buffer per geometry for dy, kept across steps (a fresh 8 MB array per layer and step would
 * cost page faults and GC, see buffer-pool.ts). tfjs asks for the input and filter gradients of a node
 * one after the other, so the buffer is filled once per node; it is refilled whenever it holds another
 * tensor's dy (dataIds are never reused, so identity is a safe key).
 */
export const gradLanes = {
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

/**
 * A fused pair's lane buffers: the first layer's input (padded) lanes and both layers' output lanes. The
 * second layer's input lanes are transient: written a few rows ahead of each gather that reads them, from
 * the first layer's output (sparseConvPendingInput in the backward pass), never stored whole.
 */
export type PairLanes = { xLanes1: Float32Array; yLanes1: Float32Array; yLanes2: Float32Array };

