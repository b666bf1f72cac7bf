import * as tf from '@tensorflow/tfjs';
import { bufferPool } from './buffer-pool';
import { checkPattern, convGeometry, type ConvAttrs, type CpuBackend, cpuBackend, f32, gradLanes, inputGradientOrder, KERNELS, keepLanes, lanesOf, need, once, outputShape, type PairLanes, pooledShape, size, wrap } from './kernel-support';
import type { GradientSumsTarget, NativeAddon } from './native-addon';
import { registerResidualBlockKernels } from './residual-blocks-kernels';

export { convGeometry, KERNELS, outputShape } from './kernel-support';

// The native addon's kernels registered as tfjs kernels of the 'cpu' backend, each with its gradient,
// so tf.grads differentiates through them like any built-in op. Kernels read their inputs from the
// backend's own Float32Arrays and hand freshly written Float32Arrays back to it: no copies in either
// direction. Gradients are lazy per input (tfjs only asks for inputs on the path to what is being
// differentiated), so e.g. the first convolution never computes a gradient for the image batch. Runs of
// residual blocks have their own module (residual-blocks-kernels.ts).

let registeredWith: NativeAddon | undefined;

/** Registers every kernel and gradient once per process; later calls are no-ops. */
export function registerNativeKernels(addon: NativeAddon): void {
  if (registeredWith) {
    if (registeredWith !== addon) throw new Error('cigl native kernels are already registered with another addon instance');
    return;
  }
  registeredWith = addon;
  bufferPool.alignWith((array) => addon.byteAlignment(array));
  bufferPool.hugePagesFrom((bytes) => addon.hugePageBuffer(bytes));
  registerConv(addon);
  registerSparseConv(addon);
  registerSparseConvBn(addon);
  registerSparseConvBnInfer(addon);
  registerSparseConvBnPair(addon);
  registerResidualBlockKernels(addon);
  registerBatchNorm(addon);
  registerPointwise(addon);
  registerDense(addon);
  registerSgd(addon);
  accelerateCpuArithmetic(addon);
}

// ---- convolution ------------------------------------------------------------------------------------

function registerConv(addon: NativeAddon): void {
  tf.registerKernel({
    kernelName: KERNELS.conv2d,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const cpu = cpuBackend(backend);
      const { x, filter } = need(inputs, 'x', 'filter');
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      const outShape = outputShape(g);
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
      const outShape = outputShape(g);
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
      const outShape = outputShape(g);
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
      const outShape = outputShape(g);
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
  /** The output is the 2×2 max pool (stride 2) of the second activation, which is never written at full size. */
  pool?: boolean;
}

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
 *
 * With `pool` the output is maxPool2(z2) (cnn's pairs): the pooled map is written straight from conv2's
 * lanes, and backward its gradient is routed to the windows' maxima in lanes twice, in cache: in the pass
 * that takes conv2's BatchNorm gradient sums and again as each row of conv2's dy is written. That replaces z2 at full size (written, read by the pool, kept for the
 * pool's backward), the pool's two passes, and the transposes of the full-size gradient.
 */
function registerSparseConvBnPair(addon: NativeAddon): void {
  const geometries = (xShape: readonly number[], filter1: readonly number[], filter2: readonly number[], attrs: SparseConvBnPairAttrs): [number[], number[]] => {
    const g1 = convGeometry(xShape, filter1, { stride: attrs.stride1, padding: attrs.padding });
    const g2 = convGeometry(outputShape(g1), filter2, { stride: attrs.stride2, padding: attrs.padding });
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
      const [, , out2] = addon.sparseConvLaneSizes(g2);
      const lanes: PairLanes = { xLanes1: bufferPool.allocate(in1), yLanes1: bufferPool.allocate(out1), yLanes2: bufferPool.allocate(out2) };
      const c1 = g1[4];
      const c2 = g2[4];
      const convShape = outputShape(g2);
      if (a.residual && (a.relu2 || a.pool || !tf.util.arraysEqual(convShape, t.x.shape))) {
        throw new Error(`sparse conv pair: a residual join needs relu2 false, no pool and an output of x's shape [${t.x.shape}], got relu2 ${a.relu2}, pool ${a.pool === true} and [${convShape}]`);
      }
      const outShape = a.pool ? pooledShape(convShape) : convShape;
      const z = bufferPool.allocate(size(outShape));
      const stats = [bufferPool.allocate(c1), bufferPool.allocate(c1), bufferPool.allocate(c2), bufferPool.allocate(c2)];
      // conv1's output goes to conv2's input lanes, transient: written by conv2's forward pass just ahead of its gather.
      const between = addon.sparseConvBnForward(g1, a.epsilon1, a.relu1, f32(cpu, t.x, 'x'), f32(cpu, t.filter1, 'filter1'), f32(cpu, t.active1, 'active1'),
        f32(cpu, t.gamma1, 'gamma1'), f32(cpu, t.beta1, 'beta1'), null, stats[0], stats[1], lanes.xLanes1, lanes.yLanes1, g2, null,
        null, null, null, false, false, true)!;
      // With the join, the activation comes after adding x: ReLU on, applied to BN2 + x.
      addon.sparseConvBnForward(g2, a.epsilon2, a.relu2 || a.residual === true, between, f32(cpu, t.filter2, 'filter2'), f32(cpu, t.active2, 'active2'),
        f32(cpu, t.gamma2, 'gamma2'), f32(cpu, t.beta2, 'beta2'), z, stats[2], stats[3], null, lanes.yLanes2, null, null,
        a.residual ? f32(cpu, t.x, 'x') : undefined, undefined, undefined, undefined, a.pool === true);
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
      // The pool's gradient in lanes until conv2's dy is written (read by its BatchNorm backward only).
      const poolLanes = a.pool ? gradLanes.slot(addon, g2, 'pair-pool', 2).values : undefined;
      // Both layers' backward passes, once per node, in the order the shared buffers allow: conv2's BatchNorm
      // → both of its gradients (the input gradient in lanes) → conv1's BatchNorm → its filter gradient, and
      // x's gradient with it when asked for. Each dy is transient: written row by row just ahead of the pass
      // that takes its layer's gradients, never stored whole.
      const xGradient = inputGradientOrder('sparse conv pair');
      const backward = once(() => {
        const lanes = lanesOf<PairLanes>(z, 'sparse conv pair');
        const out = {
          dx: xGradient.wanted() ? bufferPool.allocate(x.size) : undefined,
          dgamma1: bufferPool.allocate(gamma1.size), dbeta1: bufferPool.allocate(gamma1.size), dfilter1: bufferPool.allocate(filter1.size),
          dgamma2: bufferPool.allocate(gamma2.size), dbeta2: bufferPool.allocate(gamma2.size), dfilter2: bufferPool.allocate(filter2.size),
        };
        const dz1 = gradLanes.slot(addon, g1, 'pair-between', 2).values;
        if (joinGrad) addon.reluGradToLanes(g2, v(dz, 'dz'), v(z, 'z'), joinGrad);
        const pending2 = addon.sparseConvBnBackward(g2, a.epsilon2, a.relu2, joinGrad ?? v(dz, 'dz'), joinGrad !== undefined, lanes.yLanes2,
          v(mean2, 'mean2'), v(variance2, 'variance2'), v(gamma2, 'gamma2'), v(beta2, 'beta2'), null, out.dgamma2, out.dbeta2, poolLanes ?? null, true);
        // conv1's gradient sums are taken as conv2's input gradient writes dz1.
        const sums1: GradientSumsTarget = { geometry: g1, yLanes: lanes.yLanes1, mean: v(mean1, 'mean1'), variance: v(variance1, 'variance1'),
          gamma: v(gamma1, 'gamma1'), beta: v(beta1, 'beta1'), epsilon: a.epsilon1, relu: a.relu1, sums: new Float64Array(2 * g1[4]) };
        // conv2's input lanes re-derived from conv1's output, a few rows ahead of its filter gradient.
        const x2 = addon.sparseConvPendingInput(g1, g2, sums1.epsilon, sums1.relu, sums1.yLanes, sums1.mean, sums1.variance, sums1.gamma, sums1.beta);
        addon.sparseConvBackwardData(g2, null, v(filter2, 'filter2'), v(active2, 'active2'), dz1, true, null, null, pending2, [sums1],
          { xLanes: x2, dfilter: out.dfilter2 });
        const pending1 = addon.sparseConvBnBackward(g1, sums1.epsilon, sums1.relu, dz1, true, sums1.yLanes, sums1.mean, sums1.variance, sums1.gamma,
          sums1.beta, null, out.dgamma1, out.dbeta1, null, true, sums1.sums);
        if (out.dx) {
          addon.sparseConvBackwardData(g1, null, v(filter1, 'filter1'), v(active1, 'active1'), out.dx, false, joinGrad, null, pending1, null,
            { xLanes: lanes.xLanes1, dfilter: out.dfilter1 });
        } else {
          addon.sparseConvBackwardWeights(g1, lanes.xLanes1, null, v(active1, 'active1'), out.dfilter1, pending1);
        }
        return out;
      });
      return {
        x: () => {
          xGradient.ask();
          return wrap(backward().dx!, x.shape);
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
      const outShape = pooledShape(x.shape);
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
