import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../util/paths';
import { defaultOpenMpSpinning } from './openmp-spinning';

/**
 * The native compute addon (native/, built by node-gyp at `npm install`). All functions read and write
 * caller-owned Float32Arrays in place; shapes are plain numbers. See native/src/*.h for the semantics.
 */
/**
 * A layer's BatchNorm output left for the next convolution's forward pass to write into its input lanes
 * (sparseConvBnForward's defer). Opaque; it holds the arrays it reads until it is written.
 */
export interface PendingLanes {
  readonly __pendingLanes: never;
}

/**
 * BatchNorm's backward output dy left for the first convolution gradient that reads it to write into the
 * grad lanes (sparseConvBnBackward's defer). Opaque; it holds the arrays it reads until it is written.
 */
export interface PendingGrad {
  readonly __pendingGrad: never;
}

/**
 * A layer whose BatchNorm gradient sums a gather takes from the output gradient it writes in lanes
 * (sparseConvBackwardData's sums): its geometry (output = the gather's dx), the forward pass's yLanes and
 * batch statistics, its gamma, beta, epsilon and ReLU; `sums` (2 · channels) receives them for
 * sparseConvBnBackward.
 */
export interface GradientSumsTarget {
  geometry: number[];
  yLanes: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  epsilon: number;
  relu: boolean;
  sums: Float64Array;
}

export interface NativeAddon {
  /** geometry: [batch, inH, inW, inC, outC, kH, kW, strideH, strideW, outH, outW, padTop, padLeft, padBottom, padRight]. */
  convForward(geometry: number[], x: Float32Array, filter: Float32Array, y: Float32Array): void;
  convBackwardData(geometry: number[], dy: Float32Array, filter: Float32Array, dx: Float32Array): void;
  convBackwardWeights(geometry: number[], x: Float32Array, dy: Float32Array, dfilter: Float32Array): void;
  /**
   * Sparse convolution (native/src/sparse_conv.h): only filter positions where `active` ≠ 0 take part.
   * Activations pass through batch-innermost "lane" buffers whose element counts this returns:
   * [input lanes (written by the forward pass, read by the filter gradient), grad lanes (dy)].
   */
  sparseConvLaneSizes(geometry: number[]): [number, number, number];
  /**
   * Sparse convolution fused with training-mode BatchNorm (+ ReLU): z (NHWC), the batch mean and
   * (biased) variance; x in input lanes and y in output lanes (the third lane size) for the backward.
   * Chained pairs: x null means xLanes already holds the input; with nextGeometry, z is written into
   * nextLanes (the next convolution's input lanes) instead (z null). With skip (NHWC, z's shape; no
   * nextGeometry), z = act(BN(y) + skip): an identity residual join (pass null for the chaining pair).
   * With skipLanes instead (the padded input lanes of skipGeometry, a convolution whose input has z's
   * shape), the same join with the skip read in lanes, z in NHWC or in nextLanes. With inference, mean and
   * variance are inputs (the running statistics) and no batch moments are taken (yLanes is scratch).
   * With defer (and nextGeometry), nextLanes is not written now: the call returns a pending handle, and the
   * next convolution's call, given it as x, writes each row of its input lanes just before its gather reads
   * it (in cache). Nothing may read nextLanes, or change yLanes or the skip, in between. With defer and nextLanes
   * null the input is transient: the next call (given xLanes null) writes its rows into a ring of a few rows.
   */
  sparseConvBnForward(geometry: number[], epsilon: number, relu: boolean, x: Float32Array | PendingLanes | null, filter: Float32Array,
    active: Float32Array, gamma: Float32Array, beta: Float32Array, z: Float32Array | null, mean: Float32Array, variance: Float32Array,
    xLanes: Float32Array | null, yLanes: Float32Array, nextGeometry?: number[] | null, nextLanes?: Float32Array | null, skip?: Float32Array | null,
    skipLanes?: Float32Array | null, skipGeometry?: number[] | null, inference?: boolean, pool2?: boolean, defer?: boolean): PendingLanes | undefined;
  /**
   * dy in the grad-lanes layout (for the two convolution gradients), dgamma and dbeta; dz in NHWC or in output lanes.
   * With poolLanes (output-lanes size), dz is the gradient of the activation's 2×2 max pool (NHWC), held there in lanes
   * until dy is written (dy's rows route it to the windows' maxima).
   * With defer, dgamma and dbeta are written now but dyLanes is not: the call returns a pending handle for the
   * first of sparseConvBackwardData / sparseConvBackwardWeights to read dyLanes, which writes each row just
   * before it reads it (in cache). Nothing may read dyLanes, or change dz, yLanes or poolLanes, in between.
   * With sums (a GradientSumsTarget's, taken from this dz), the pass that takes them is skipped.
   * dyLanes null (with defer): a transient dy, for sparseConvBackwardWeights or sparseConvBackwardData with
   * weights (given dyLanes null), which write each row into a ring of a few rows just before reading it: dy
   * is never stored whole.
   */
  sparseConvBnBackward(geometry: number[], epsilon: number, relu: boolean, dz: Float32Array, dzInLanes: boolean, yLanes: Float32Array,
    mean: Float32Array, variance: Float32Array, gamma: Float32Array, beta: Float32Array, dyLanes: Float32Array | null, dgamma: Float32Array,
    dbeta: Float32Array, poolLanes?: Float32Array | null, defer?: boolean, sums?: Float64Array): PendingGrad | undefined;
  /** The array's data address modulo 64 (bytes): lets the buffer pool hand out cache-line-aligned views. */
  byteAlignment(array: Float32Array): number;
  /** A zero-filled buffer of fresh memory on a 2 MiB boundary, advised as transparent huge pages (Linux). */
  hugePageBuffer(bytes: number): ArrayBuffer;
  /** A residual join's ReLU backward, dz ⊙ [out > 0] (NHWC, the convolution's output shape), written in output lanes. */
  reluGradToLanes(geometry: number[], dz: Float32Array, out: Float32Array, gLanes: Float32Array): void;
  sparseConvForward(geometry: number[], x: Float32Array, filter: Float32Array, active: Float32Array, y: Float32Array, xLanes: Float32Array): void;
  sparseConvGradToLanes(geometry: number[], dy: Float32Array, dyLanes: Float32Array): void;
  /**
   * dx in NHWC, or with dxInLanes in the output-lanes layout of the layer that produced x. With addLanes
   * (x's shape in lanes), dx += addLanes: an identity shortcut's gradient (reluGradToLanes). With gateLanes
   * (lanes dx only: this layer's padded input lanes), dx is kept where x > 0 (the ReLU of the join that made x).
   * With pending (sparseConvBnBackward's defer, for dyLanes), dyLanes is written on the way. With sums (dx in
   * lanes), the BatchNorm gradient sums of each target layer are taken from dx's rows as they are written.
   * With weights, the filter gradient too, each dy row read for both right after it is written; a transient
   * pending dy (sparseConvBnBackward given dyLanes null; dyLanes null here too) is then held a few rows at a time.
   */
  sparseConvBackwardData(geometry: number[], dyLanes: Float32Array | null, filter: Float32Array, active: Float32Array, dx: Float32Array, dxInLanes?: boolean,
    addLanes?: Float32Array | null, gateLanes?: Float32Array | null, pending?: PendingGrad | null, sums?: GradientSumsTarget[] | null,
    weights?: { xLanes: Float32Array | PendingLanes; dfilter: Float32Array }): void;
  /**
   * The consumer's input lanes act(BN(y)) as the producer's forward pass left them pending (no skip), as a transient
   * pending handle for sparseConvBackwardData's weights.xLanes: re-derived a few rows ahead of its filter gradient.
   */
  sparseConvPendingInput(producerGeometry: number[], consumerGeometry: number[], epsilon: number, relu: boolean, yLanes: Float32Array,
    mean: Float32Array, variance: Float32Array, gamma: Float32Array, beta: Float32Array): PendingLanes;
  /**
   * dfilter at the active positions, 0 elsewhere. With pending (for dyLanes), dyLanes is written on the way;
   * with a transient pending dy (sparseConvBnBackward given dyLanes null), dyLanes is null here too.
   */
  sparseConvBackwardWeights(geometry: number[], xLanes: Float32Array, dyLanes: Float32Array | null, active: Float32Array, dfilter: Float32Array,
    pending?: PendingGrad): void;
  batchNormTrainForward(rows: number, channels: number, epsilon: number, relu: boolean, y: Float32Array, gamma: Float32Array,
    beta: Float32Array, z: Float32Array, mean: Float32Array, variance: Float32Array): void;
  batchNormTrainBackward(rows: number, channels: number, epsilon: number, relu: boolean, dz: Float32Array, z: Float32Array,
    y: Float32Array, mean: Float32Array, variance: Float32Array, gamma: Float32Array, dy: Float32Array, dgamma: Float32Array,
    dbeta: Float32Array): void;
  batchNormInferForward(rows: number, channels: number, epsilon: number, relu: boolean, y: Float32Array, mean: Float32Array,
    variance: Float32Array, gamma: Float32Array, beta: Float32Array, z: Float32Array): void;
  batchNormInferBackward(rows: number, channels: number, epsilon: number, relu: boolean, dz: Float32Array, z: Float32Array,
    y: Float32Array, mean: Float32Array, variance: Float32Array, gamma: Float32Array, dy: Float32Array, dgamma: Float32Array,
    dbeta: Float32Array): void;
  /** z = a op b (op 0 add, 1 sub, 2 mul); a and b hold `size` elements or one (broadcast). */
  binary(op: 0 | 1 | 2, size: number, a: Float32Array, b: Float32Array, z: Float32Array): void;
  addRelu(size: number, a: Float32Array, b: Float32Array, z: Float32Array): void;
  /** One fused SGD-momentum update (native/src/sgd.h), bitwise equal to the optimiser's tfjs op chain. */
  sgdMomentumStep(size: number, lr: number, momentum: number, weightDecay: number, nesterov: boolean, w: Float32Array, buf: Float32Array,
    grad: Float32Array, mask: Float32Array | null, wOut: Float32Array, bufOut: Float32Array, gradScale?: Float32Array | null): void;
  reluBackward(size: number, dz: Float32Array, out: Float32Array, g: Float32Array): void;
  maxPool2Forward(batch: number, height: number, width: number, channels: number, x: Float32Array, y: Float32Array): void;
  maxPool2Backward(batch: number, height: number, width: number, channels: number, x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  globalAvgPoolForward(batch: number, height: number, width: number, channels: number, x: Float32Array, y: Float32Array): void;
  globalAvgPoolBackward(batch: number, height: number, width: number, channels: number, dy: Float32Array, dx: Float32Array): void;
  denseForward(batch: number, inSize: number, outSize: number, x: Float32Array, w: Float32Array, b: Float32Array, relu: boolean, y: Float32Array): void;
  denseBackwardData(batch: number, inSize: number, outSize: number, g: Float32Array, w: Float32Array, dx: Float32Array): void;
  denseBackwardWeights(batch: number, inSize: number, outSize: number, x: Float32Array, g: Float32Array, dw: Float32Array): void;
  columnSums(rows: number, cols: number, g: Float32Array, sums: Float32Array): void;
  softmaxCrossEntropy(rows: number, classes: number, logits: Float32Array, labels: Int32Array): number;
  softmaxCrossEntropyBackward(rows: number, classes: number, logits: Float32Array, labels: Int32Array, scale: number, dlogits: Float32Array): void;
  /** GFLOP/s of an n×n×n sgemm, best of `repeats`. */
  measureSgemm(n: number, repeats: number): number;
  /** CPU seconds of the calling thread (for profiling with one thread). */
  threadCpuSeconds(): number;
  info(): { onednn: string; isa: string; threads: number; convPlans: number };
  setNumThreads(threads: number): void;
  /** Starts (from zero) or stops the sparse kernels' phase timers (native/src/phase_timer.h). */
  /** [the calling thread flushes denormals inside a call, every OpenMP worker does] (addon.cc: DenormalsFlushed). */
  mxcsrFlushesDenormals(): [boolean, boolean];
  setPhaseTiming(enabled: boolean): void;
  /** Milliseconds and calls per phase since setPhaseTiming(true); phases inside parallel regions timed on thread 0. */
  phaseTimes(): Record<string, { ms: number; calls: number }>;
  /** Winograd for 3×3 stride-1 convolutions with ≥ 32 channels: off by default (wrong gradients for some geometries, native/src/conv.cc). */
  setWinograd(enabled: boolean): void;
  convUsesWinograd(geometry: number[]): boolean;
}

export const nativeAddonPath = path.join(repoRoot, 'native', 'build', 'Release', 'cigl_native.node');

export type NativeLoadResult = { readonly addon: NativeAddon } | { readonly error: string };

let cached: NativeLoadResult | undefined;

/** Loads the addon once; on failure says why (not built, or built but not loadable here). */
export function loadNativeAddon(): NativeLoadResult {
  if (cached) return cached;
  if (!fs.existsSync(nativeAddonPath)) {
    cached = { error: `the native addon is not built (${path.relative(process.cwd(), nativeAddonPath) || nativeAddonPath} is missing; needs libdnnl-dev and a C++ toolchain, then \`npm run build:native\`)` };
    return cached;
  }
  try {
    defaultOpenMpSpinning();
    cached = { addon: require(nativeAddonPath) as NativeAddon };
  } catch (e) {
    cached = { error: `the native addon failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
  return cached;
}

/** The addon, or an Error saying why it is unavailable. */
export function requireNativeAddon(): NativeAddon {
  const loaded = loadNativeAddon();
  if ('error' in loaded) throw new Error(`cigl native compute: ${loaded.error}`);
  return loaded.addon;
}
