import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { nativeOps } from '../../src/compute/native-ops';
import type { ConvBnCall, ConvBnOptions, ResidualBlockCall } from '../../src/compute/ops';
import { setSparseComputeMode, sparseComputeMode, type SparseComputeMode, sparseComputeReport, resetSparseComputeReport } from '../../src/compute/sparse-selection';
import { stockOps } from '../../src/compute/stock-ops';
import { Rng } from '../../src/util/rng';
import { convBnResult, nativeUnavailable, relativeError, reluSafeMask, runningStats, TOLERANCE } from './compare';

const skip = nativeUnavailable;

t.before(async () => {
  await tf.setBackend('cpu');
});

/** Runs `body` with the sparse compute mode forced, restoring the previous mode afterwards. */
function withMode<T>(mode: SparseComputeMode, body: () => T): T {
  const previous = sparseComputeMode();
  setSparseComputeMode(mode);
  try {
    return body();
  } finally {
    setSparseComputeMode(previous);
  }
}

interface Case {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number;
  readonly stride: number;
  readonly density: number;
}

/** A 0/1 pattern at `density`, a filter that is 0 outside it, and a few active weights exactly 0 (freshly grown). */
/** The addon and convGeometry for tests that call the kernels directly, with seeded random arrays. */
async function directKernels(seed: number) {
  const { requireNativeAddon } = await import('../../src/compute/native-addon');
  const { convGeometry } = await import('../../src/compute/native-kernels');
  const rng = new Rng(seed);
  const random = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => scale * rng.nextNormal());
  return { addon: requireNativeAddon(), convGeometry, rng, random };
}

function maskedFilter(c: Case, seed: number): { filter: tf.Tensor4D; active: tf.Tensor4D; zeroActive: number[] } {
  const rng = new Rng(seed);
  const n = c.kernel * c.kernel * c.inChannels * c.outChannels;
  const active = new Float32Array(n);
  const w = new Float32Array(n);
  const zeroActive: number[] = [];
  for (let i = 0; i < n; i++) {
    if (rng.nextFloat() >= c.density) continue;
    active[i] = 1;
    if (zeroActive.length < 3 && rng.nextFloat() < 0.2) zeroActive.push(i);
    else w[i] = rng.nextNormal() * 0.3;
  }
  const shape: [number, number, number, number] = [c.kernel, c.kernel, c.inChannels, c.outChannels];
  return { filter: tf.tensor4d(w, shape), active: tf.tensor4d(active, shape), zeroActive };
}

/** The tensors among a convBnResult's fields. */
const tensorsOf = (result: object): tf.Tensor[] => Object.values(result).filter((v) => v instanceof tf.Tensor) as tf.Tensor[];

/**
 * convBnResult on the sparse kernels (mode on) and on the dense ones (mode off), the dense filter gradient
 * masked to the pattern, and one dispose for all three.
 */
function sparseAndDense(x: tf.Tensor4D, filter: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, opts: ConvBnOptions) {
  const sparse = withMode('on', () => convBnResult(nativeOps, x, filter, gamma, beta, opts));
  const dense = withMode('off', () => convBnResult(nativeOps, x, filter, gamma, beta, opts));
  const maskedDense = tf.mul(dense.dfilter, opts.active!);
  return { sparse, dense, maskedDense, dispose: () => tf.dispose([maskedDense, ...tensorsOf(sparse), ...tensorsOf(dense)]) };
}

/** A convBn layer of a test network: weights, pattern (undefined: dense), ReLU, stride. */
type TestLayer = { filter: tf.Tensor4D; active: tf.Tensor4D | undefined; gamma: tf.Tensor1D; beta: tf.Tensor1D; relu: boolean; stride: number };
type Outcome = { z: tf.Tensor; grads: tf.Tensor[]; stats: tf.Tensor[]; leaked: number; kernels: string[] };

/**
 * `build` run forward and backward on fresh running statistics against a random upstream gradient (seeded):
 * the output, the gradients of x and of every layer's filter, gamma and beta (filter gradients masked to
 * the pattern with `maskFilters`: the dense path also differentiates pruned weights), the running
 * statistics, the kernels that ran, and the tensors left behind beyond those returned.
 */
async function layersOutcome(x: tf.Tensor4D, layers: readonly TestLayer[], build: (x: tf.Tensor4D, call: (i: number) => ConvBnCall) => tf.Tensor4D,
  seed: number, maskFilters = false): Promise<Outcome> {
  const stats = layers.map((l) => runningStats(l.filter.shape[3]));
  const before = tf.memory().numTensors;
  let out!: { z: tf.Tensor; grads: tf.Tensor[] };
  const profile = await tf.profile(() => {
    out = tf.tidy(() => {
      const f = (xx: tf.Tensor, ...params: tf.Tensor[]): tf.Tensor4D => build(xx as tf.Tensor4D, (i) => ({
        filter: params[3 * i] as tf.Tensor4D, bn: { gamma: params[3 * i + 1] as tf.Tensor1D, beta: params[3 * i + 2] as tf.Tensor1D, stats: stats[i] },
        opts: { stride: layers[i].stride, padding: 'same' as const, relu: layers[i].relu, training: true, active: layers[i].active, layer: `l${i}` },
      }));
      const inputs = [x, ...layers.flatMap((l) => [l.filter, l.gamma, l.beta])];
      const z = f(inputs[0], ...inputs.slice(1));
      const upstream = tf.randomNormal(z.shape, 0, 1, 'float32', seed);
      const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(xs[0], ...xs.slice(1)), upstream)))(inputs);
      const masked = (g: tf.Tensor, i: number): tf.Tensor => (maskFilters && i % 3 === 1 ? tf.mul(g, layers[(i - 1) / 3].active!) : g);
      return { z, grads: grads.map(masked) };
    });
  });
  const leaked = tf.memory().numTensors - before - 1 - out.grads.length;
  const result = { ...out, stats: stats.flatMap((s) => [s.mean.clone(), s.variance.clone()]), leaked, kernels: profile.kernelNames };
  stats.forEach((s) => tf.dispose([s.mean, s.variance]));
  return result;
}

t.test('sparse kernels match the dense masked path: outputs and gradients across densities, strides, kernels, odd sizes', { skip }, async (t) => {
  let cases = 0;
  for (const density of [0.01, 0.05, 0.1, 0.2, 0.5]) {
    for (const stride of [1, 2]) {
      for (const kernel of [1, 3]) {
        // Batch 19 fills two lane vectors partly; odd heights and widths exercise tfjs's asymmetric 'same' padding.
        const c: Case = { batch: 19, height: stride === 2 ? 9 : 7, width: 5, inChannels: 16, outChannels: 24, kernel, stride, density };
        const name = `density ${density}, stride ${stride}, kernel ${kernel}`;
        const x = tf.randomNormal([c.batch, c.height, c.width, c.inChannels], 0.2, 1, 'float32', 1) as tf.Tensor4D;
        const { filter, active, zeroActive } = maskedFilter(c, 7 + cases);
        const gamma = tf.randomUniform([c.outChannels], 0.5, 1.5, 'float32', 3) as tf.Tensor1D;
        const beta = tf.randomNormal([c.outChannels], 0, 0.3, 'float32', 4) as tf.Tensor1D;
        // BatchNorm in evaluation mode and no ReLU: a per-channel affine map, so every gradient reaches the
        // convolution (at density 0.01 whole output channels are 0; batch statistics would make them
        // constant and their gradients 0). Training mode and ReLU are covered below and by the trainer test.
        const opts: ConvBnOptions = { stride, padding: 'same', relu: false, training: false, active, layer: 'under-test' };
        resetSparseComputeReport();
        const sparse = withMode('on', () => convBnResult(nativeOps, x, filter, gamma, beta, opts));
        t.same(sparseComputeReport().map((d) => d.sparse), [true], `${name}: the sparse kernels ran`);
        const dense = withMode('off', () => convBnResult(nativeOps, x, filter, gamma, beta, opts));
        const maskedDense = tf.mul(dense.dfilter, active);
        for (const [key, reference] of [['y', dense.y], ['dx', dense.dx], ['dfilter', maskedDense], ['dgamma', dense.dgamma], ['dbeta', dense.dbeta]] as const) {
          const err = relativeError(sparse[key], reference);
          t.ok(err < TOLERANCE, `${name}: ${key} relative error ${err.toExponential(2)}`);
        }
        const sparseGrad = sparse.dfilter.dataSync();
        const denseGrad = dense.dfilter.dataSync();
        const pattern = active.dataSync();
        t.ok(pattern.every((a, i) => a !== 0 || sparseGrad[i] === 0), `${name}: inactive positions get exactly zero gradient`);
        const scale = Math.max(...denseGrad.map(Math.abs));
        for (const i of zeroActive) {
          t.ok(denseGrad[i] !== 0 && Math.abs(sparseGrad[i] - denseGrad[i]) < TOLERANCE * scale,
            `${name}: exactly-zero active weight ${i} gets its gradient (${sparseGrad[i].toExponential(3)} vs ${denseGrad[i].toExponential(3)})`);
        }
        t.equal(sparse.leaked, 0, `${name}: no tensor leaked`);
        tf.dispose([x, filter, active, gamma, beta, maskedDense, ...tensorsOf(sparse), ...tensorsOf(dense)]);
        cases++;
      }
    }
  }
  t.equal(cases, 20);
});

t.test('the fused sparse convolution + training-mode BatchNorm (+ ReLU) matches the dense path: output, gradients, running statistics', { skip }, async (t) => {
  const { KERNELS } = await import('../../src/compute/native-kernels');
  let cases = 0;
  // Batch 19: a partly filled lane vector (statistics must skip the padding lanes). Batch 70: two lane
  // chunks of 48 lanes (48 and 22 images), whose statistics and gradient sums are taken together.
  for (const [batch, density] of [[19, 0.01], [19, 0.1], [19, 0.5], [70, 0.1]] as const) {
    for (const stride of [1, 2]) {
      for (const kernel of [1, 3]) {
        for (const relu of [false, true]) {
          const c: Case = { batch, height: stride === 2 ? 9 : 7, width: 5, inChannels: 16, outChannels: 24, kernel, stride, density };
          const name = `batch ${batch}, density ${density}, stride ${stride}, kernel ${kernel}, relu ${relu}`;
          const x = tf.randomNormal([c.batch, c.height, c.width, c.inChannels], 0.2, 1, 'float32', 71 + cases) as tf.Tensor4D;
          const { filter, active } = maskedFilter(c, 72 + cases);
          const gamma = tf.randomUniform([c.outChannels], 0.5, 1.5, 'float32', 73) as tf.Tensor1D;
          const beta = tf.randomNormal([c.outChannels], 0, 0.3, 'float32', 74) as tf.Tensor1D;
          const opts: ConvBnOptions = { stride, padding: 'same', relu, training: true, active };
          // Both paths' gradients through the ReLU, compared away from its threshold (reluSafeMask).
          const safe = relu ? withMode('off', () => reluSafeMask(nativeOps, x, filter, gamma, beta, opts)) : undefined;
          let sparse!: ReturnType<typeof convBnResult>;
          const profile = await tf.profile(() => {
            sparse = withMode('on', () => convBnResult(nativeOps, x, filter, gamma, beta, opts, safe));
          });
          t.ok(profile.kernelNames.includes(KERNELS.sparseConvBn), `${name}: the fused kernel ran`);
          const dense = withMode('off', () => convBnResult(nativeOps, x, filter, gamma, beta, opts, safe));
          const maskedDense = tf.mul(dense.dfilter, active);
          for (const [key, reference] of [['y', dense.y], ['dx', dense.dx], ['dgamma', dense.dgamma], ['dbeta', dense.dbeta],
            ['mean', dense.mean], ['variance', dense.variance]] as const) {
            const err = relativeError(sparse[key], reference);
            t.ok(err < TOLERANCE, `${name}: ${key} relative error ${err.toExponential(2)}`);
          }
          // The filter gradient against the scale of the layer's whole (dense) filter gradient: through
          // training-mode BatchNorm each entry is a sum that cancels almost to 0 (Σ dy = 0 per channel),
          // so at density 0.01 the few active entries can be far smaller than the float32 rounding of
          // their own terms on either path (checked against float64: both paths within 4e-4 of it).
          const gradScale = Math.max(...dense.dfilter.dataSync().map(Math.abs));
          const sparseGrad = sparse.dfilter.dataSync();
          const maskedGrad = maskedDense.dataSync();
          const gradErr = Math.max(...sparseGrad.map((v, i) => Math.abs(v - maskedGrad[i]))) / gradScale;
          t.ok(gradErr < TOLERANCE, `${name}: dfilter error ${gradErr.toExponential(2)} of the layer's gradient scale`);
          t.ok(active.dataSync().every((a, i) => a !== 0 || sparseGrad[i] === 0), `${name}: inactive positions get exactly zero gradient`);
          t.equal(sparse.leaked, 0, `${name}: no tensor leaked`);
          tf.dispose([x, filter, active, gamma, beta, maskedDense, ...tensorsOf(sparse), ...tensorsOf(dense), ...(safe ? [safe] : [])]);
          cases++;
        }
      }
    }
  }
  t.equal(cases, 32);
  // Inputs with a mean far from zero against their spread: the batch statistics must not cancel (the
  // gradients are then ill-conditioned sums in float32 on either path, so only the forward is compared).
  const c: Case = { batch: 19, height: 7, width: 5, inChannels: 16, outChannels: 24, kernel: 3, stride: 1, density: 0.1 };
  const x = tf.randomNormal([c.batch, c.height, c.width, c.inChannels], 30, 1, 'float32', 99) as tf.Tensor4D;
  const { filter, active } = maskedFilter(c, 98);
  const gamma = tf.ones([24]) as tf.Tensor1D;
  const beta = tf.zeros([24]) as tf.Tensor1D;
  const opts: ConvBnOptions = { stride: 1, padding: 'same', relu: false, training: true, active };
  const { sparse, dense, dispose } = sparseAndDense(x, filter, gamma, beta, opts);
  for (const key of ['y', 'mean', 'variance'] as const) {
    const err = relativeError(sparse[key], dense[key]);
    t.ok(err < TOLERANCE, `input mean 30: ${key} relative error ${err.toExponential(2)}`);
  }
  dispose();
  tf.dispose([x, filter, active, gamma, beta]);
});

t.test('training-mode BatchNorm and ReLU on top of the sparse convolution', { skip }, async (t) => {
  for (const stride of [1, 2]) {
    const c: Case = { batch: 21, height: 9, width: 9, inChannels: 16, outChannels: 16, kernel: 3, stride, density: 0.2 };
    const x = tf.randomNormal([c.batch, c.height, c.width, c.inChannels], 0.2, 1, 'float32', 61) as tf.Tensor4D;
    const { filter, active } = maskedFilter(c, 62);
    const gamma = tf.randomUniform([16], 0.5, 1.5, 'float32', 63) as tf.Tensor1D;
    const beta = tf.randomNormal([16], 0, 0.3, 'float32', 64) as tf.Tensor1D;
    const opts: ConvBnOptions = { stride, padding: 'same', relu: true, training: true, active };
    const { sparse, dense, maskedDense, dispose } = sparseAndDense(x, filter, gamma, beta, opts);
    for (const [key, reference] of [['y', dense.y], ['dx', dense.dx], ['dfilter', maskedDense], ['dgamma', dense.dgamma], ['dbeta', dense.dbeta]] as const) {
      const err = relativeError(sparse[key], reference);
      t.ok(err < TOLERANCE, `stride ${stride}: ${key} relative error ${err.toExponential(2)}`);
    }
    t.equal(sparse.leaked, 0, `stride ${stride}: no tensor leaked`);
    dispose();
    tf.dispose([x, filter, active, gamma, beta]);
  }
});

t.test('batches of any size: fewer images than one lane vector, and more than eight', { skip }, async (t) => {
  for (const batch of [1, 3, 16, 130]) {
    const c: Case = { batch, height: 5, width: 6, inChannels: 5, outChannels: 7, kernel: 3, stride: 1, density: 0.3 };
    const x = tf.randomNormal([batch, c.height, c.width, c.inChannels], 0, 1, 'float32', 21) as tf.Tensor4D;
    const { filter, active } = maskedFilter(c, 22);
    const gamma = tf.ones([7]) as tf.Tensor1D;
    const beta = tf.zeros([7]) as tf.Tensor1D;
    const opts: ConvBnOptions = { stride: 1, padding: 'same', relu: false, training: true, active };
    const { sparse, dense, maskedDense, dispose } = sparseAndDense(x, filter, gamma, beta, opts);
    t.ok(relativeError(sparse.dx, dense.dx) < TOLERANCE, `batch ${batch}: dx`);
    t.ok(relativeError(sparse.dfilter, maskedDense) < TOLERANCE, `batch ${batch}: dfilter`);
    t.ok(relativeError(sparse.y, dense.y) < TOLERANCE, `batch ${batch}: y`);
    dispose();
    tf.dispose([x, filter, active, gamma, beta]);
  }
});

t.test('stock ops ignore the active pattern', async (t) => {
  const c: Case = { batch: 2, height: 5, width: 5, inChannels: 3, outChannels: 4, kernel: 3, stride: 1, density: 0.5 };
  const x = tf.randomNormal([2, 5, 5, 3], 0, 1, 'float32', 31) as tf.Tensor4D;
  const { filter, active } = maskedFilter(c, 32);
  const gamma = tf.ones([4]) as tf.Tensor1D;
  const beta = tf.zeros([4]) as tf.Tensor1D;
  const base: ConvBnOptions = { stride: 1, padding: 'same', relu: true, training: true };
  const withPattern = convBnResult(stockOps, x, filter, gamma, beta, { ...base, active });
  const without = convBnResult(stockOps, x, filter, gamma, beta, base);
  t.equal(relativeError(withPattern.dfilter, without.dfilter), 0, 'same (dense) filter gradient');
  tf.dispose([x, filter, active, gamma, beta, ...tensorsOf(withPattern), ...tensorsOf(without)]);
});

t.test('without an active pattern, or in mode off, the dense kernels run', { skip }, async (t) => {
  const c: Case = { batch: 4, height: 6, width: 6, inChannels: 16, outChannels: 16, kernel: 3, stride: 1, density: 0.05 };
  const x = tf.randomNormal([4, 6, 6, 16], 0, 1, 'float32', 41) as tf.Tensor4D;
  const { filter, active } = maskedFilter(c, 42);
  const bn = { gamma: tf.ones([16]) as tf.Tensor1D, beta: tf.zeros([16]) as tf.Tensor1D, stats: { mean: tf.variable(tf.zeros([16]), false), variance: tf.variable(tf.ones([16]), false), momentum: 0.1, epsilon: 1e-5 } };
  const opts: ConvBnOptions = { stride: 1, padding: 'same', relu: true, training: true, layer: 'l' };
  resetSparseComputeReport();
  tf.dispose(withMode('on', () => nativeOps.convBn(x, filter, bn, opts)));
  t.same(sparseComputeReport(), [], 'no pattern: no decision, dense kernels');
  tf.dispose(withMode('off', () => nativeOps.convBn(x, filter, bn, { ...opts, active })));
  t.same(sparseComputeReport().map((d) => d.sparse), [false], 'mode off: dense kernels');
  tf.dispose(withMode('auto', () => nativeOps.convBn(x, filter, bn, { ...opts, active })));
  t.same(sparseComputeReport().map((d) => d.sparse), [true], 'mode auto, 3×3, 16 channels, density ≤ threshold: sparse kernels');
  tf.dispose([x, filter, active, bn.gamma, bn.beta, bn.stats.mean, bn.stats.variance]);
});

t.test('a chained pair (conv → BN → ReLU → conv → BN), also as an identity residual block or followed by a max pool, on the fused pair kernel matches two dense convBn calls', { skip }, async (t) => {
  const { KERNELS } = await import('../../src/compute/native-kernels');
  type Pair = { z: tf.Tensor; dx: tf.Tensor; grads: tf.Tensor[]; stats: tf.Tensor[]; leaked: number };
  // join: none, fused into the pair kernel, or the pair followed by a separate addRelu (same result expected bitwise);
  // 'pooled': a 2×2 max pool fused into the pair kernel, 'poolSeparate': the pair then the pool kernel.
  type Join = 'none' | 'fused' | 'separate' | 'pooled' | 'poolSeparate';
  const pairResult = (x: tf.Tensor4D, layers: { filter: tf.Tensor4D; active: tf.Tensor4D; gamma: tf.Tensor1D; beta: tf.Tensor1D; stride: number; relu: boolean }[], join: Join): Pair => {
    const stats = layers.map((l) => runningStats(l.filter.shape[3]));
    const before = tf.memory().numTensors;
    const out = tf.tidy(() => {
      const f = (xx: tf.Tensor, f1: tf.Tensor, g1: tf.Tensor, b1: tf.Tensor, f2: tf.Tensor, g2: tf.Tensor, b2: tf.Tensor): tf.Tensor4D => {
        const call = (i: number, filter: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => ({
          filter: filter as tf.Tensor4D, bn: { gamma: gamma as tf.Tensor1D, beta: beta as tf.Tensor1D, stats: stats[i] },
          opts: { stride: layers[i].stride, padding: 'same' as const, relu: layers[i].relu, training: true, active: layers[i].active, layer: `l${i}` },
        });
        if (join === 'separate') return nativeOps.addRelu(nativeOps.convBnPair!(xx as tf.Tensor4D, call(0, f1, g1, b1), call(1, f2, g2, b2)), xx as tf.Tensor4D);
        if (join === 'poolSeparate') return nativeOps.maxPool2(nativeOps.convBnPair!(xx as tf.Tensor4D, call(0, f1, g1, b1), call(1, f2, g2, b2)));
        const tail = join === 'fused' ? 'residual' : join === 'pooled' ? 'maxPool2' : undefined;
        return nativeOps.convBnPair!(xx as tf.Tensor4D, call(0, f1, g1, b1), call(1, f2, g2, b2), tail);
      };
      const inputs = [x, layers[0].filter, layers[0].gamma, layers[0].beta, layers[1].filter, layers[1].gamma, layers[1].beta];
      const z = f(...(inputs as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]));
      const upstream = tf.randomNormal(z.shape, 0, 1, 'float32', 17);
      const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...(xs as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor])), upstream)))(inputs);
      return { z, dx: grads[0], grads: [tf.mul(grads[1], layers[0].active), grads[2], grads[3], tf.mul(grads[4], layers[1].active), grads[5], grads[6]] };
    });
    const leaked = tf.memory().numTensors - before - 8;
    const result = { ...out, stats: stats.flatMap((s) => [s.mean.clone(), s.variance.clone()]), leaked };
    stats.forEach((s) => tf.dispose([s.mean, s.variance]));
    return result;
  };
  // The pooled cases have odd sizes (9×7 and, after stride 2, 5×4): a dropped last row and column.
  // Batch 70: two lane chunks (48 and 22 images) through the pair, its join and its pool.
  const cases = [[1, 16, false, 'none', 19], [2, 24, true, 'none', 19], [1, 16, false, 'fused', 19], [1, 16, true, 'pooled', 19], [2, 24, true, 'pooled', 19],
    [1, 24, false, 'pooled', 19], [2, 24, true, 'none', 70], [1, 16, false, 'fused', 70], [2, 24, true, 'pooled', 70]] as const;
  for (const [stride1, outChannels, relu2, join, batch] of cases) {
    const name = `batch ${batch}, stride ${stride1}, ${outChannels} channels, second ReLU ${relu2}, ${join}`;
    const c1: Case = { batch, height: 9, width: 7, inChannels: 16, outChannels, kernel: 3, stride: stride1, density: 0.15 };
    const c2: Case = { ...c1, inChannels: outChannels, stride: 1 };
    const x = tf.randomNormal([batch, 9, 7, 16], 0.2, 1, 'float32', 81) as tf.Tensor4D;
    const layers = [c1, c2].map((c, i) => ({
      ...maskedFilter(c, 82 + i), stride: c.stride, relu: i === 0 || relu2,
      gamma: tf.randomUniform([outChannels], 0.5, 1.5, 'float32', 83 + i) as tf.Tensor1D, beta: tf.randomNormal([outChannels], 0, 0.3, 'float32', 85 + i) as tf.Tensor1D,
    }));
    let sparse!: Pair;
    const profile = await tf.profile(() => {
      sparse = withMode('on', () => pairResult(x, layers, join));
    });
    t.ok(profile.kernelNames.includes(KERNELS.sparseConvBnPair), `${name}: the pair kernel ran`);
    if (join === 'fused') t.ok(!profile.kernelNames.includes(KERNELS.addRelu), `${name}: no separate join kernel`);
    if (join === 'pooled') t.ok(!profile.kernelNames.includes(KERNELS.maxPool2), `${name}: no separate pool kernel`);
    const dense = withMode('off', () => pairResult(x, layers, join));
    t.ok(!profile.kernelNames.includes(KERNELS.conv2d), `${name}: no dense convolution on the sparse side`);
    const labels = ['z', 'dx', 'dfilter1', 'dgamma1', 'dbeta1', 'dfilter2', 'dgamma2', 'dbeta2', 'mean1', 'variance1', 'mean2', 'variance2'];
    const a = [sparse.z, sparse.dx, ...sparse.grads, ...sparse.stats];
    const b = [dense.z, dense.dx, ...dense.grads, ...dense.stats];
    labels.forEach((label, i) => {
      const err = relativeError(a[i], b[i]);
      t.ok(err < TOLERANCE, `${name}: ${label} relative error ${err.toExponential(2)}`);
    });
    t.equal(sparse.leaked, 0, `${name}: no tensor leaked`);
    if (join === 'fused') {
      // The fused join does the separate kernels' arithmetic in the same order: bitwise equal.
      const separate = withMode('on', () => pairResult(x, layers, 'separate'));
      const c = [separate.z, separate.dx, ...separate.grads, ...separate.stats];
      labels.forEach((label, i) => t.equal(tf.tidy(() => tf.max(tf.abs(tf.sub(a[i], c[i]))).dataSync()[0]), 0, `${name}: ${label} bitwise that of pair + addRelu`));
      tf.dispose(c);
    }
    if (join === 'pooled') {
      // The same maxima and routing as the pool kernel; only BatchNorm's gradient sums may be added in another order.
      const separate = withMode('on', () => pairResult(x, layers, 'poolSeparate'));
      const c = [separate.z, separate.dx, ...separate.grads, ...separate.stats];
      t.equal(tf.tidy(() => tf.max(tf.abs(tf.sub(a[0], c[0]))).dataSync()[0]), 0, `${name}: z bitwise that of pair + maxPool2`);
      labels.forEach((label, i) => {
        const err = relativeError(a[i], c[i]);
        t.ok(err < 1e-6, `${name}: ${label} against pair + maxPool2: relative error ${err.toExponential(2)}`);
      });
      tf.dispose(c);
    }
    tf.dispose([x, ...layers.flatMap((l) => [l.filter, l.active, l.gamma, l.beta]), ...a, ...b]);
  }
});

t.test('a projection block (pair body, 1×1 shortcut with BatchNorm, join) on the residual-blocks kernel matches the dense ops', { skip }, async (t) => {
  const { KERNELS } = await import('../../src/compute/native-kernels');
  const { shortcutTap } = await import('../../src/compute/residual-blocks-kernels');
  const runBlock = (x: tf.Tensor4D, layers: TestLayer[]): Promise<Outcome> =>
    layersOutcome(x, layers, (xx, call) => nativeOps.residualBlocks!(xx, [[call(0), call(1), call(2)]]), 37, true);
  // Stride 2 on even and odd sizes (the 1×1 shortcut sits at different taps of the 3×3 window), stride 1
  // with a change of width, and a shortcut without pruned weights.
  // Batch 70: two lane chunks, the shortcut's join read from the matching chunk of the block input's lanes.
  for (const [stride, height, width, shortcutDensity, batch] of [[2, 8, 8, 0.5, 19], [2, 9, 7, 0.3, 19], [1, 6, 5, 0.5, 19], [2, 8, 6, 1, 19], [2, 9, 7, 0.3, 70]] as const) {
    const name = `batch ${batch}, stride ${stride}, ${height}×${width}, shortcut density ${shortcutDensity}`;
    const [cin, cout] = [16, 24];
    const x = tf.randomNormal([batch, height, width, cin], 0.2, 1, 'float32', 91) as tf.Tensor4D;
    const cases: Case[] = [
      { batch, height, width, inChannels: cin, outChannels: cout, kernel: 3, stride, density: 0.2 },
      { batch, height, width, inChannels: cout, outChannels: cout, kernel: 3, stride: 1, density: 0.2 },
      { batch, height, width, inChannels: cin, outChannels: cout, kernel: 1, stride, density: shortcutDensity },
    ];
    const layers: TestLayer[] = cases.map((c, i) => {
      const { filter, active } = maskedFilter(c, 92 + i);
      return {
        filter, active, stride: c.stride, relu: i === 0,
        gamma: tf.randomUniform([cout], 0.5, 1.5, 'float32', 95 + i) as tf.Tensor1D, beta: tf.randomNormal([cout], 0, 0.3, 'float32', 98 + i) as tf.Tensor1D,
      };
    });
    t.ok(shortcutTap(x.shape, layers[0].filter.shape, layers[2].filter.shape, stride, stride, 'same'), `${name}: the shortcut has a tap`);
    const fused = await withMode('auto', () => runBlock(x, layers));
    const dense = await withMode('off', () => runBlock(x, layers));
    t.ok(fused.kernels.includes(KERNELS.sparseResidualBlocks), `${name}: the residual-blocks kernel ran`);
    for (const k of [KERNELS.conv2d, KERNELS.addRelu, KERNELS.batchNormTrain]) t.notOk(fused.kernels.includes(k), `${name}: no ${k} beside it`);
    t.ok(dense.kernels.includes(KERNELS.conv2d) && !dense.kernels.includes(KERNELS.sparseResidualBlocks), `${name}: the reference ran dense`);
    const labels = ['z', 'dx', ...['1', '2', 'S'].flatMap((l) => [`dfilter${l}`, `dgamma${l}`, `dbeta${l}`]), ...['1', '2', 'S'].flatMap((l) => [`mean${l}`, `variance${l}`])];
    const a = [fused.z, ...fused.grads, ...fused.stats];
    const b = [dense.z, ...dense.grads, ...dense.stats];
    labels.forEach((label, i) => {
      const err = relativeError(a[i], b[i]);
      t.ok(err < TOLERANCE, `${name}: ${label} relative error ${err.toExponential(2)}`);
    });
    t.equal(fused.leaked, 0, `${name}: no tensor leaked`);
    tf.dispose([x, ...layers.flatMap((l) => [l.filter, l.active, l.gamma, l.beta]), ...a, ...b]);
  }
  t.equal(shortcutTap([4, 8, 8, 16], [3, 3, 16, 24], [1, 1, 16, 24], 2, 1, 'same'), undefined, 'a shortcut of another stride has no tap');
  t.equal(shortcutTap([4, 8, 8, 16], [3, 3, 16, 24], [1, 1, 16, 24], 1, 1, 'valid'), undefined, "'valid' padding: output sizes differ, no tap");
});

t.test('residual blocks in sequence on the residual-blocks kernel are bitwise the blocks one by one (identity and projection blocks)', { skip }, async (t) => {
  const { KERNELS } = await import('../../src/compute/native-kernels');
  /** A block's layers: first, second and, for a projection block, the shortcut. */
  type Block = TestLayer[];
  // Blocks as the model builds them: ops.residualBlocks with the whole run, or with one block at a time
  // (an identity block alone is the pair kernel's residual mode, a projection block alone a run of one).
  const runBlocks = (x: tf.Tensor4D, blocks: Block[], together: boolean, head?: TestLayer): Promise<Outcome> =>
    layersOutcome(x, [...(head ? [head] : []), ...blocks.flat()], (xx, call) => {
      let next = head ? 1 : 0;
      const calls = blocks.map((block) => block.map(() => call(next++)) as unknown as ResidualBlockCall);
      if (together) return nativeOps.residualBlocks!(xx, calls, head && call(0));
      const start = head ? nativeOps.convBn(xx, call(0).filter, call(0).bn, call(0).opts) : xx;
      return calls.reduce((h, block) => nativeOps.residualBlocks!(h, [block]), start);
    }, 27);
  const [batch, height, width] = [19, 9, 7];
  const layer = (inChannels: number, outChannels: number, kernel: number, stride: number, relu: boolean, seed: number, dense = false): TestLayer => {
    const { filter, active } = maskedFilter({ batch, height, width, inChannels, outChannels, kernel, stride, density: kernel === 1 ? 0.5 : 0.2 }, seed);
    if (dense) active.dispose();
    return {
      filter, active: dense ? undefined : active, relu, stride,
      gamma: tf.randomUniform([outChannels], 0.5, 1.5, 'float32', seed + 100) as tf.Tensor1D, beta: tf.randomNormal([outChannels], 0, 0.3, 'float32', seed + 200) as tf.Tensor1D,
    };
  };
  const identity = (channels: number, seed: number, denseFirst = false): Block => [layer(channels, channels, 3, 1, true, seed, denseFirst), layer(channels, channels, 3, 1, false, seed + 1)];
  const projection = (from: number, to: number, stride: number, seed: number): Block => [layer(from, to, 3, stride, true, seed), layer(to, to, 3, 1, false, seed + 1), layer(from, to, 1, stride, false, seed + 2)];
  const x = tf.randomNormal([batch, height, width, 16], 0.1, 1, 'float32', 91) as tf.Tensor4D;
  const image = tf.randomNormal([batch, height, width, 3], 0.1, 1, 'float32', 92) as tf.Tensor4D;
  // Four identity blocks; the same with block 2's first layer dense (no pattern), which splits the run; a
  // stage's entry (projection at stride 2) between identity blocks, and one at stride 1 that widens.
  // A head (a stem: 3 input channels, ReLU) before the blocks joins the run; the reference runs it alone.
  const cases: [string, () => Block[], (() => TestLayer)?][] = [
    ['four identity blocks', () => [identity(16, 10), identity(16, 20), identity(16, 30), identity(16, 40)]],
    ['block 2 dense (runs of 2, then 1 pair and 1 block)', () => [identity(16, 10), identity(16, 20), identity(16, 30, true), identity(16, 40)]],
    ['identity, projection at stride 2, two identity blocks', () => [identity(16, 10), projection(16, 24, 2, 20), identity(24, 30), identity(24, 40)]],
    ['projection at stride 1 first, then identity', () => [projection(16, 24, 1, 50), identity(24, 60)]],
    ['a head (3 → 16 channels), then one identity block', () => [identity(16, 70)], () => layer(3, 16, 3, 1, true, 80)],
    ['a head, an identity block, a projection at stride 2', () => [identity(16, 70), projection(16, 24, 2, 90)], () => layer(3, 16, 3, 1, true, 80)],
  ];
  for (const [name, make, makeHead] of cases) {
    const blocks = make();
    const head = makeHead?.();
    const input = head ? image : x;
    const together = await withMode('on', () => runBlocks(input, blocks, true, head));
    const alone = await withMode('on', () => runBlocks(input, blocks, false, head));
    const runs = (o: Outcome) => o.kernels.filter((k) => k === KERNELS.sparseResidualBlocks).length;
    const projections = blocks.filter((b) => b.length === 3).length;
    t.equal(runs(together), 1, `${name}: one run on the residual-blocks kernel`);
    t.equal(runs(alone), projections, `${name}: the reference ran block by block (the kernel only for projection blocks alone)`);
    t.equal(together.leaked, 0, `${name}: no tensor leaked`);
    const layers = [...(head ? [head] : []), ...blocks.flat()];
    const labels = ['z', 'dx', ...layers.flatMap((_, i) => [`dfilter${i}`, `dgamma${i}`, `dbeta${i}`]), ...layers.flatMap((_, i) => [`mean${i}`, `variance${i}`])];
    const a = [together.z, ...together.grads, ...together.stats];
    const b = [alone.z, ...alone.grads, ...alone.stats];
    t.equal(a.length, labels.length, `${name}: every output compared`);
    labels.forEach((label, i) => t.equal(tf.tidy(() => tf.max(tf.abs(tf.sub(a[i], b[i]))).dataSync()[0]), 0, `${name}: ${label} bitwise`));
    // Not vacuous: the gradient reaches the first block's input and every layer.
    t.ok(tf.tidy(() => tf.max(tf.abs(together.grads[0])).dataSync()[0]) > 0, `${name}: dx is not zero`);
    tf.dispose([...a, ...b, ...layers.flatMap((l) => [l.filter, l.gamma, l.beta, ...(l.active ? [l.active] : [])])]);
  }
  tf.dispose([x, image]);
});

t.test('the gathers never read the padding rows of their lane inputs: rows of the window over zero padding take only the kernel rows on data', { skip }, async (t) => {
  const { addon, convGeometry, rng } = await directKernels(11);
  for (const [stride, batch] of [[1, 19], [2, 19], [1, 70], [2, 70]]) {
    const [height, width, inC, outC, kernel] = [stride === 2 ? 9 : 7, 5, 16, 24, 3];
    const g = convGeometry([batch, height, width, inC], [kernel, kernel, inC, outC], { stride, padding: 'same' });
    const [outH, outW, padTop] = [g[9], g[10], g[11]];
    const chunks = Math.ceil(batch / 64);
    // The lane layouts' padded rows in each chunk (native/src/sparse_conv.cc, LaneLayout).
    const inRows = Math.max((outH - 1) * stride + kernel, padTop + height);
    const gradTop = Math.floor((kernel - 1) / stride);
    const gradRows = gradTop + Math.max(outH, Math.floor((padTop + height - 1) / stride) + 1);
    const [inLanes, gradLanes] = addon.sparseConvLaneSizes(g);
    const random = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.nextNormal());
    const x = random(batch * height * width * inC);
    const dy = random(batch * outH * outW * outC);
    const active = Float32Array.from({ length: kernel * kernel * inC * outC }, () => (rng.nextFloat() < 0.3 ? 1 : 0));
    const filter = active.map((a) => a * rng.nextNormal());
    const xLanes = new Float32Array(inLanes);
    const dyLanes = new Float32Array(gradLanes);
    const y = new Float32Array(dy.length);
    addon.sparseConvForward(g, x, filter, active, y, xLanes);
    addon.sparseConvGradToLanes(g, dy, dyLanes);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(filter.length);
    addon.sparseConvBackwardData(g, dyLanes, filter, active, dx);
    addon.sparseConvBackwardWeights(g, xLanes, dyLanes, active, dw);
    // NaN in every padding row of every chunk: a multiply-add that read one would turn its output into NaN.
    const poison = (buffer: Float32Array, rows: number, dataRows: [number, number]): number => {
      const row = buffer.length / (rows * chunks);
      let poisoned = 0;
      for (let r = 0; r < rows * chunks; r++) {
        if (r % rows >= dataRows[0] && r % rows < dataRows[1]) continue;
        buffer.fill(NaN, r * row, (r + 1) * row);
        poisoned++;
      }
      return poisoned;
    };
    t.ok(poison(xLanes, inRows, [padTop, padTop + height]) >= 1, `stride ${stride}: x has padding rows to poison`);
    t.ok(poison(dyLanes, gradRows, [gradTop, gradTop + outH]) >= 1, `stride ${stride}: dy has padding rows to poison`);
    const dx2 = new Float32Array(x.length);
    const dw2 = new Float32Array(filter.length);
    addon.sparseConvBackwardData(g, dyLanes, filter, active, dx2);
    addon.sparseConvBackwardWeights(g, xLanes, dyLanes, active, dw2);
    t.same(dx2, dx, `stride ${stride}, batch ${batch}: input gradient bitwise the same`);
    t.same(dw2, dw, `stride ${stride}, batch ${batch}: filter gradient bitwise the same`);
    // The forward gather from the given (poisoned) input lanes: x null.
    const z = (lanesIn: Float32Array, xIn: Float32Array | null): Float32Array => {
      const out = new Float32Array(dy.length);
      addon.sparseConvBnForward(g, 1e-5, true, xIn, filter, active, new Float32Array(outC).fill(1), new Float32Array(outC), out,
        new Float32Array(outC), new Float32Array(outC), lanesIn, new Float32Array(addon.sparseConvLaneSizes(g)[2]));
      return out;
    };
    const clean = z(new Float32Array(inLanes), x);
    t.ok(clean.some((v) => v > 0), `stride ${stride}, batch ${batch}: the forward output is not trivially zero`);
    t.same(z(xLanes, null), clean, `stride ${stride}, batch ${batch}: forward output bitwise the same`);
  }
});

t.test('pending outputs (defer): the consumer writes the lanes ahead of its gather, bitwise what the separate pass writes; misuse is refused', { skip }, async (t) => {
  const { addon, convGeometry, rng, random } = await directKernels(23);
  const pattern = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rng.nextFloat() < 0.3 ? 1 : 0));
  // Batch 70: two lane chunks, each thread writes its own chunk's rows; batch 19: one chunk shared by the
  // threads, so the consumer writes the pending output in one pass first. Stride 2 for the first layer
  // (the second reads a smaller map), a skip in lanes on the second's output, and evaluation mode.
  for (const [batch, stride, inference] of [[70, 1, false], [70, 2, false], [19, 1, false], [70, 1, true]] as const) {
    const name = `batch ${batch}, stride ${stride}${inference ? ', evaluation' : ''}`;
    const [h, w, c] = [9, 7, 16];
    const g1 = convGeometry([batch, h, w, c], [3, 3, c, 24], { stride, padding: 'same' });
    const g2 = convGeometry([batch, g1[9], g1[10], 24], [3, 3, 24, 24], { stride: 1, padding: 'same' });
    const g3 = convGeometry([batch, g2[9], g2[10], 24], [3, 3, 24, 16], { stride: 1, padding: 'same' });
    const x = random(batch * h * w * c);
    const layers = [[g1, c, 24], [g2, 24, 24], [g3, 24, 16]].map(([g, cin, cout]) => {
      const active = pattern(9 * (cin as number) * (cout as number));
      return { g: g as number[], active, filter: active.map((a) => a * rng.nextNormal()), gamma: random(cout as number, 0.3).map((v) => 1 + v),
        beta: random(cout as number, 0.3), mean: random(cout as number, 0.1), variance: random(cout as number, 0.2).map((v) => 1 + Math.abs(v)) };
    });
    const sizes = layers.map((l) => addon.sparseConvLaneSizes(l.g));
    const dz = random(batch * g3[9] * g3[10] * 16);
    // conv1 → conv2 → conv3 (z in NHWC), conv2's join reading conv2's own input lanes as the skip; every
    // pending output given to the next call, or none deferred.
    const run = (defer: boolean) => {
      const lanes = sizes.map(([input, , output]) => ({ x: new Float32Array(input), y: new Float32Array(output) }));
      const stats = layers.map((l) => [l.mean.slice(), l.variance.slice()]);
      const z = new Float32Array(batch * g3[9] * g3[10] * 16);
      let input: Float32Array | ReturnType<typeof addon.sparseConvBnForward> = x;
      layers.forEach((l, i) => {
        const next = layers[i + 1];
        const skip = i === 1 ? lanes[1].x : null;
        input = addon.sparseConvBnForward(l.g, 1e-5, true, input ?? null, l.filter, l.active, l.gamma, l.beta, next ? null : z, stats[i][0], stats[i][1],
          lanes[i].x, lanes[i].y, next ? next.g : null, next ? lanes[i + 1].x : null, null, skip, skip ? l.g : null, inference, false, defer && next !== undefined);
      });
      if (inference) return { z, stats, lanes, grads: [] };
      // Backward through conv3 and conv2: each dy pending for the first gradient that reads it (conv3's input
      // gradient, conv2's filter gradient), or written by its own pass.
      const dyLanes = layers.map((l) => new Float32Array(addon.sparseConvLaneSizes(l.g)[1]));
      const dz2 = new Float32Array(sizes[1][2]);
      const dgamma = [new Float32Array(16), new Float32Array(24)];
      const dbeta = [new Float32Array(16), new Float32Array(24)];
      const dfilter = [new Float32Array(layers[2].filter.length), new Float32Array(layers[1].filter.length)];
      const p3 = addon.sparseConvBnBackward(g3, 1e-5, true, dz, false, lanes[2].y, stats[2][0], stats[2][1], layers[2].gamma, layers[2].beta, dyLanes[2],
        dgamma[0], dbeta[0], null, defer);
      addon.sparseConvBackwardData(g3, dyLanes[2], layers[2].filter, layers[2].active, dz2, true, null, null, p3);
      addon.sparseConvBackwardWeights(g3, lanes[2].x, dyLanes[2], layers[2].active, dfilter[0]);
      const p2 = addon.sparseConvBnBackward(g2, 1e-5, true, dz2, true, lanes[1].y, stats[1][0], stats[1][1], layers[1].gamma, layers[1].beta, dyLanes[1],
        dgamma[1], dbeta[1], null, defer);
      addon.sparseConvBackwardWeights(g2, lanes[1].x, dyLanes[1], layers[1].active, dfilter[1], p2);
      const dz1 = new Float32Array(sizes[0][2]);
      addon.sparseConvBackwardData(g2, dyLanes[1], layers[1].filter, layers[1].active, dz1, true);
      return { z, stats, lanes, grads: [dz2, dz1, ...dgamma, ...dbeta, ...dfilter, dyLanes[2], dyLanes[1]] };
    };
    const deferred = run(true);
    const separate = run(false);
    // Elements whose bits differ (Object.is: NaN equals NaN, 0 and -0 differ).
    const differing = (a: Float32Array, b: Float32Array): number => a.length === b.length ? a.reduce((n, v, i) => n + (Object.is(v, b[i]) ? 0 : 1), 0) : -1;
    t.ok(deferred.z.some((v) => v !== 0), `${name}: the output is not zero`);
    t.equal(differing(deferred.z, separate.z), 0, `${name}: z bitwise`);
    deferred.stats.flat().forEach((s, i) => t.equal(differing(s, separate.stats.flat()[i]), 0, `${name}: statistics ${i} bitwise`));
    deferred.lanes.forEach((l, i) => {
      t.equal(differing(l.x, separate.lanes[i].x), 0, `${name}: layer ${i + 1}'s input lanes bitwise`);
      t.equal(differing(l.y, separate.lanes[i].y), 0, `${name}: layer ${i + 1}'s output lanes bitwise`);
    });
    deferred.grads.forEach((gr, i) => t.equal(differing(gr, separate.grads[i]), 0, `${name}: gradient array ${i} bitwise`));
  }
  // Misuse: a handle written twice, given to another convolution, or of the other kind; defer without a next convolution.
  const g = convGeometry([70, 5, 5, 16], [3, 3, 16, 16], { stride: 1, padding: 'same' });
  const [inLanes, gradLanes, outLanes] = addon.sparseConvLaneSizes(g);
  const f32 = (n: number): Float32Array => new Float32Array(n);
  const [filter, active] = [f32(9 * 16 * 16).fill(0.1), f32(9 * 16 * 16).fill(1)];
  const ones = f32(16).fill(1);
  const nextLanes = f32(inLanes);
  const forward = (input: Float32Array | ReturnType<typeof addon.sparseConvBnForward>, xLanes: Float32Array, defer: boolean) =>
    addon.sparseConvBnForward(g, 1e-5, true, input ?? null, filter, active, ones, f32(16), defer ? null : f32(70 * 25 * 16), f32(16), f32(16), xLanes, f32(outLanes),
      defer ? g : null, defer ? nextLanes : null, null, null, null, false, false, defer);
  const pending = forward(f32(70 * 25 * 16), f32(inLanes), true);
  t.throws(() => forward(pending, f32(inLanes), false), /pending input is for another convolution/, 'another buffer is refused');
  t.doesNotThrow(() => forward(pending, nextLanes, false), 'its own consumer takes it');
  t.throws(() => forward(pending, nextLanes, false), /already written/, 'a second use is refused');
  t.throws(() => addon.sparseConvBackwardWeights(g, f32(inLanes), f32(gradLanes), active, f32(filter.length), forward(f32(70 * 25 * 16), f32(inLanes), true) as never),
    /must be a pending dy handle/, 'a pending output of the other kind is refused');
  t.throws(() => addon.sparseConvBnForward(g, 1e-5, true, f32(70 * 25 * 16), filter, active, ones, f32(16), f32(70 * 25 * 16), f32(16), f32(16), f32(inLanes),
    f32(outLanes), null, null, null, null, null, false, false, true), /only an output into the next convolution's lanes/);
});

t.test('a dy left pending for the gradients (transient, never stored; both gradients in one pass) or routed from a max pool gives the stored dy\'s gradients bitwise; misuse is refused', { skip }, async (t) => {
  const { addon, convGeometry, rng, random } = await directKernels(53);
  // Batch 70: two lane chunks, one per thread; batch 19: one chunk whose rows the threads split (a stored
  // pending dy is then written in one pass first; a transient one goes through each thread's ring).
  // 9×7 with stride 2 and the pool: odd sizes, so a dropped last row and column.
  for (const [batch, stride, pool, dzInLanes] of [[70, 1, false, true], [70, 2, false, false], [19, 1, false, true], [70, 1, true, false], [70, 2, true, false],
    [19, 1, true, false]] as const) {
    const name = `batch ${batch}, stride ${stride}${pool ? ', max pool' : ''}, dz ${dzInLanes ? 'in lanes' : 'NHWC'}`;
    const g = convGeometry([batch, 9, 7, 16], [3, 3, 16, 24], { stride, padding: 'same' });
    const [inLanes, gradLanes, outLanes] = addon.sparseConvLaneSizes(g);
    const [oh, ow] = [g[9], g[10]];
    const active = Float32Array.from({ length: 9 * 16 * 24 }, () => (rng.nextFloat() < 0.3 ? 1 : 0));
    const filter = active.map((a) => a * rng.nextNormal());
    const [gamma, beta] = [random(24, 0.3).map((v) => 1 + v), random(24, 0.3)];
    const xLanes = new Float32Array(inLanes);
    const yLanes = new Float32Array(outLanes);
    const [mean, variance] = [new Float32Array(24), new Float32Array(24)];
    addon.sparseConvBnForward(g, 1e-5, true, random(batch * 9 * 7 * 16), filter, active, gamma, beta, new Float32Array(batch * (pool ? (oh >> 1) * (ow >> 1) : oh * ow) * 24),
      mean, variance, xLanes, yLanes, null, null, null, null, null, false, pool);
    let dz = random(pool ? batch * (oh >> 1) * (ow >> 1) * 24 : batch * oh * ow * 24);
    if (dzInLanes) {
      // dz in output lanes as a gather leaves it: zero in the padding lanes.
      const lanes = new Float32Array(outLanes);
      const dzGeometry = convGeometry([batch, oh, ow, 24], [1, 1, 24, 24], { stride: 1, padding: 'same' });
      addon.sparseConvBackwardData(dzGeometry, (() => { const d = new Float32Array(addon.sparseConvLaneSizes(dzGeometry)[1]); addon.sparseConvGradToLanes(dzGeometry, dz, d); return d; })(),
        new Float32Array(24 * 24).fill(0).map((_, i) => (i % 25 === 0 ? 1 : 0)), new Float32Array(24 * 24).fill(1), lanes, true);
      dz = lanes;
    }
    // dy stored (written in its own pass, or by the input gradient ahead of its gather), transient (for the
    // filter gradient alone), or taken by both gradients in one pass (stored or transient).
    type Mode = 'stored' | 'deferred' | 'transient' | 'fused' | 'fused transient';
    const backward = (mode: Mode) => {
      const kept = mode !== 'transient' && mode !== 'fused transient';
      const out = { dy: kept ? new Float32Array(gradLanes) : null, dgamma: new Float32Array(24), dbeta: new Float32Array(24),
        dfilter: new Float32Array(filter.length), dx: new Float32Array(batch * 9 * 7 * 16) };
      const pending = addon.sparseConvBnBackward(g, 1e-5, true, dz, dzInLanes, yLanes, mean, variance, gamma, beta, out.dy, out.dgamma, out.dbeta,
        pool ? new Float32Array(outLanes) : null, mode !== 'stored');
      if (mode.startsWith('fused')) {
        addon.sparseConvBackwardData(g, out.dy, filter, active, out.dx, false, null, null, pending, null, { xLanes, dfilter: out.dfilter });
        return out;
      }
      if (mode === 'deferred') addon.sparseConvBackwardData(g, out.dy!, filter, active, out.dx, false, null, null, pending);
      addon.sparseConvBackwardWeights(g, xLanes, out.dy, active, out.dfilter, mode === 'transient' ? pending : undefined);
      if (mode === 'stored') addon.sparseConvBackwardData(g, out.dy!, filter, active, out.dx);
      return out;
    };
    const [stored, deferred, transient, fused, fusedTransient] = (['stored', 'deferred', 'transient', 'fused', 'fused transient'] as const).map(backward);
    const same = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
    t.ok(stored.dfilter.some((v) => v !== 0) && stored.dx.some((v) => v !== 0), `${name}: the gradients are not zero`);
    t.ok(same(deferred.dy!, stored.dy!), `${name}: dy written ahead of the input gradient bitwise that of its own pass`);
    t.ok(same(fused.dy!, stored.dy!), `${name}: dy written ahead of both gradients in one pass bitwise that of its own pass`);
    for (const [label, r] of [['deferred', deferred], ['fused', fused], ['fused transient', fusedTransient]] as const) t.ok(same(r.dx, stored.dx), `${name}: ${label} dy, input gradient bitwise`);
    for (const [label, r] of [['deferred', deferred], ['transient', transient], ['fused', fused], ['fused transient', fusedTransient]] as const) {
      t.ok(same(r.dfilter, stored.dfilter), `${name}: ${label} dy, filter gradient bitwise`);
      t.ok(same(r.dgamma, stored.dgamma) && same(r.dbeta, stored.dbeta), `${name}: ${label} dy, dgamma and dbeta bitwise`);
    }
  }
  // Misuse: a transient dy is for the filter gradient alone, and only as a pending dy.
  const g = convGeometry([70, 5, 5, 16], [3, 3, 16, 16], { stride: 1, padding: 'same' });
  const [inLanes, gradLanes, outLanes] = addon.sparseConvLaneSizes(g);
  const f32 = (n: number): Float32Array => new Float32Array(n);
  const [filter, active, ones] = [f32(9 * 256).fill(0.1), f32(9 * 256).fill(1), f32(16).fill(1)];
  const transient = () => addon.sparseConvBnBackward(g, 1e-5, true, f32(70 * 25 * 16), false, f32(outLanes), f32(16), ones, ones, f32(16), null, f32(16), f32(16), null, true);
  t.throws(() => addon.sparseConvBnBackward(g, 1e-5, true, f32(70 * 25 * 16), false, f32(outLanes), f32(16), ones, ones, f32(16), null, f32(16), f32(16), null, false),
    /dyLanes null \(a transient dy\) needs defer/);
  t.throws(() => addon.sparseConvBackwardData(g, f32(gradLanes), filter, active, f32(70 * 25 * 16), false, null, null, transient()),
    /a transient dy \(no dyLanes\) needs the filter gradient taken in the same call \(weights\)/);
  t.throws(() => addon.sparseConvBackwardWeights(g, f32(inLanes), f32(gradLanes), active, f32(9 * 256), transient()),
    /a transient pending dy goes with dyLanes null/);
  t.throws(() => addon.sparseConvBackwardWeights(g, f32(inLanes), null, active, f32(9 * 256)), /dyLanes/, 'dyLanes null without a transient dy is refused');
});

t.test('a transient input (never stored: written a few rows ahead of each gather, forward and filter gradient) gives the stored input\'s results bitwise; misuse is refused', { skip }, async (t) => {
  const { addon, convGeometry, rng, random } = await directKernels(67);
  // Batch 70: each thread its own chunk and ring; batch 19: threads share the chunk, so the input is written
  // whole first. conv2 at stride 1 and 2 (its ring read ahead by 3 rows, 2 apart), and evaluation.
  for (const [batch, stride, inference] of [[70, 1, false], [70, 2, false], [19, 1, false], [19, 2, false], [70, 1, true]] as const) {
    const name = `batch ${batch}, stride ${stride}${inference ? ', evaluation' : ''}`;
    const g1 = convGeometry([batch, 9, 7, 16], [3, 3, 16, 24], { stride: 1, padding: 'same' });
    const g2 = convGeometry([batch, 9, 7, 24], [3, 3, 24, 16], { stride, padding: 'same' });
    const [in1, , out1] = addon.sparseConvLaneSizes(g1);
    const [in2, grad2, out2] = addon.sparseConvLaneSizes(g2);
    const layer = (cin: number, cout: number) => {
      const active = Float32Array.from({ length: 9 * cin * cout }, () => (rng.nextFloat() < 0.3 ? 1 : 0));
      return { active, filter: active.map((v) => v * rng.nextNormal()), gamma: random(cout, 0.3).map((v) => 1 + v), beta: random(cout, 0.3),
        mean: random(cout, 0.1), variance: random(cout, 0.2).map((v) => 1 + Math.abs(v)) };
    };
    const [l1, l2] = [layer(16, 24), layer(24, 16)];
    const x = random(batch * 9 * 7 * 16);
    const dz = random(batch * g2[9] * g2[10] * 16);
    const run = (transient: boolean) => {
      const [xLanes1, y1, y2] = [new Float32Array(in1), new Float32Array(out1), new Float32Array(out2)];
      const xLanes2 = transient ? null : new Float32Array(in2);
      const stats = [l1.mean.slice(), l1.variance.slice(), l2.mean.slice(), l2.variance.slice()];
      const z = new Float32Array(batch * g2[9] * g2[10] * 16);
      const between = addon.sparseConvBnForward(g1, 1e-5, true, x, l1.filter, l1.active, l1.gamma, l1.beta, null, stats[0], stats[1], xLanes1, y1, g2,
        xLanes2, null, null, null, inference, false, true);
      addon.sparseConvBnForward(g2, 1e-5, false, between ?? null, l2.filter, l2.active, l2.gamma, l2.beta, z, stats[2], stats[3], xLanes2, y2, null, null,
        null, null, null, inference);
      if (inference) return { z, y2, stats, grads: [] };
      // conv2's backward: both gradients in one pass, x read stored or re-derived from conv1's output.
      const [dgamma, dbeta, dfilter, dz1] = [new Float32Array(16), new Float32Array(16), new Float32Array(l2.filter.length), new Float32Array(out1)];
      const dyLanes2 = new Float32Array(grad2);
      const pending = addon.sparseConvBnBackward(g2, 1e-5, false, dz, false, y2, stats[2], stats[3], l2.gamma, l2.beta, dyLanes2, dgamma, dbeta, null, true);
      const x2 = transient ? addon.sparseConvPendingInput(g1, g2, 1e-5, true, y1, stats[0], stats[1], l1.gamma, l1.beta) : xLanes2!;
      addon.sparseConvBackwardData(g2, dyLanes2, l2.filter, l2.active, dz1, true, null, null, pending, null, { xLanes: x2, dfilter });
      return { z, y2, stats, grads: [dgamma, dbeta, dfilter, dz1] };
    };
    const same = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
    const [stored, transient] = [run(false), run(true)];
    t.ok(stored.z.some((v) => v !== 0), `${name}: the output is not zero`);
    t.ok(same(transient.z, stored.z) && same(transient.y2, stored.y2), `${name}: conv2's output (and its lanes) bitwise`);
    transient.stats.forEach((st, i) => t.ok(same(st, stored.stats[i]), `${name}: statistics ${i} bitwise`));
    transient.grads.forEach((gr, i) => t.ok(same(gr, stored.grads[i]), `${name}: gradient array ${i} bitwise`));
    if (!inference) t.ok(stored.grads[2].some((v) => v !== 0), `${name}: the filter gradient is not zero`);
  }
  // Misuse: a transient input goes with xLanes null, only with defer, and as a filter gradient's x only when transient.
  const g = convGeometry([70, 5, 5, 16], [3, 3, 16, 16], { stride: 1, padding: 'same' });
  const [inLanes, gradLanes, outLanes] = addon.sparseConvLaneSizes(g);
  const f32 = (n: number): Float32Array => new Float32Array(n);
  const [filter, active, ones] = [f32(9 * 256).fill(0.1), f32(9 * 256).fill(1), f32(16).fill(1)];
  const forward = (input: Float32Array | ReturnType<typeof addon.sparseConvBnForward>, xLanes: Float32Array | null, nextLanes: Float32Array | null, defer: boolean) =>
    addon.sparseConvBnForward(g, 1e-5, true, input ?? null, filter, active, ones, f32(16), defer ? null : f32(70 * 25 * 16), f32(16), f32(16), xLanes, f32(outLanes),
      defer ? g : null, nextLanes, null, null, null, false, false, defer);
  t.throws(() => addon.sparseConvBnForward(g, 1e-5, true, f32(70 * 25 * 16), filter, active, ones, f32(16), null, f32(16), f32(16), f32(inLanes), f32(outLanes), g, null),
    /nextLanes null \(a transient input\) needs defer/);
  t.throws(() => forward(forward(f32(70 * 25 * 16), f32(inLanes), null, true), f32(inLanes), null, false), /a transient pending input goes with xLanes null/);
  const dz = f32(70 * 25 * 16).fill(0.5);
  const backward = (x: Float32Array | ReturnType<typeof addon.sparseConvPendingInput>) => addon.sparseConvBackwardData(g, f32(gradLanes), filter, active,
    f32(70 * 25 * 16), false, null, null, null, null, { xLanes: x, dfilter: f32(9 * 256) });
  t.throws(() => backward(forward(dz, f32(inLanes), f32(inLanes), true)!), /weights.xLanes as a handle must be transient/);
  const x = addon.sparseConvPendingInput(g, g, 1e-5, true, f32(outLanes), f32(16), ones, ones, f32(16));
  t.doesNotThrow(() => backward(x), 'a re-derived input is taken once');
  t.throws(() => backward(x), /already written/, 'and refused the second time');
  const other = convGeometry([70, 5, 5, 8], [3, 3, 8, 16], { stride: 1, padding: 'same' });
  t.throws(() => addon.sparseConvPendingInput(g, other, 1e-5, true, f32(outLanes), f32(16), ones, ones, f32(16)), /the consumer's input is not the producer's output/);
});

t.test('BatchNorm gradient sums taken by the gather that writes dz in lanes give the backward pass what its own sums pass gives', { skip }, async (t) => {
  const { addon, convGeometry, rng, random } = await directKernels(41);
  for (const [batch, stride] of [[70, 1], [70, 2], [19, 1]] as const) {
    const name = `batch ${batch}, stride ${stride}`;
    // conv1 (the BatchNorm layer whose output gradient is gathered) → conv2 (whose input gradient it is).
    const g1 = convGeometry([batch, 9, 7, 16], [3, 3, 16, 24], { stride, padding: 'same' });
    const g2 = convGeometry([batch, g1[9], g1[10], 24], [3, 3, 24, 16], { stride: 1, padding: 'same' });
    const [, , out1] = addon.sparseConvLaneSizes(g1);
    const [, grad2] = addon.sparseConvLaneSizes(g2);
    const active = Float32Array.from({ length: 9 * 24 * 16 }, () => (rng.nextFloat() < 0.3 ? 1 : 0));
    const filter = active.map((a) => a * rng.nextNormal());
    // y1 in lanes as the forward pass leaves it: zero in the padding lanes (a convolution of zero images).
    const y1 = new Float32Array(out1);
    addon.sparseConvBnForward(g1, 1e-5, true, random(batch * 9 * 7 * 16), Float32Array.from({ length: 9 * 16 * 24 }, () => rng.nextNormal()),
      new Float32Array(9 * 16 * 24).fill(1), new Float32Array(24).fill(1), new Float32Array(24), new Float32Array(batch * g1[9] * g1[10] * 24),
      new Float32Array(24), new Float32Array(24), new Float32Array(addon.sparseConvLaneSizes(g1)[0]), y1);
    const [mean, variance, gamma, beta] = [random(24, 0.3), random(24, 0.3).map((v) => 1 + Math.abs(v)), random(24, 0.3).map((v) => 1 + v), random(24, 0.3)];
    const dyLanes2 = new Float32Array(grad2);
    addon.sparseConvGradToLanes(g2, random(batch * g2[9] * g2[10] * 16), dyLanes2);
    const dz1 = new Float32Array(out1);
    const target = { geometry: g1, yLanes: y1, mean, variance, gamma, beta, epsilon: 1e-5, relu: true, sums: new Float64Array(48) };
    addon.sparseConvBackwardData(g2, dyLanes2, filter, active, dz1, true, null, null, null, [target]);
    const dz1Plain = new Float32Array(out1);
    addon.sparseConvBackwardData(g2, dyLanes2, filter, active, dz1Plain, true);
    t.ok(dz1.every((v, i) => Object.is(v, dz1Plain[i])), `${name}: dz bitwise the same with the sums taken`);
    t.ok(target.sums.some((v) => v !== 0), `${name}: sums were written`);
    const backward = (sums?: Float64Array) => {
      const out = { dy: new Float32Array(addon.sparseConvLaneSizes(g1)[1]), dgamma: new Float32Array(24), dbeta: new Float32Array(24) };
      addon.sparseConvBnBackward(g1, 1e-5, true, dz1, true, y1, mean, variance, gamma, beta, out.dy, out.dgamma, out.dbeta, null, false, sums);
      return out;
    };
    const [given, own] = [backward(target.sums), backward()];
    const relative = (a: Float32Array, b: Float32Array): number =>
      a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0) / b.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (const key of ['dy', 'dgamma', 'dbeta'] as const) t.ok(relative(given[key], own[key]) < 1e-6, `${name}: ${key} as with its own sums pass (${relative(given[key], own[key]).toExponential(1)})`);
  }
  const g = convGeometry([70, 5, 5, 16], [3, 3, 16, 16], { stride: 1, padding: 'same' });
  const [, grad, out] = addon.sparseConvLaneSizes(g);
  const f32 = (n: number): Float32Array => new Float32Array(n);
  const target = (geometry: number[]) => ({ geometry, yLanes: f32(out), mean: f32(16), variance: f32(16), gamma: f32(16), beta: f32(16), epsilon: 1e-5, relu: false, sums: new Float64Array(32) });
  t.throws(() => addon.sparseConvBackwardData(g, f32(grad), f32(9 * 256), f32(9 * 256), f32(70 * 25 * 16), false, null, null, null, [target(g)]),
    /gradient sums need dx in lanes/);
  const other = convGeometry([70, 5, 5, 8], [3, 3, 8, 8], { stride: 1, padding: 'same' });
  t.throws(() => addon.sparseConvBackwardData(g, f32(grad), f32(9 * 256), f32(9 * 256), f32(out), true, null, null, null, [target(other)]),
    /sums\[0\]\.geometry's output is not this convolution's input/);
  t.throws(() => addon.sparseConvBackwardData(g, f32(grad), f32(9 * 256), f32(9 * 256), f32(out), true, null, null, null, [{ ...target(g), sums: new Float64Array(3) }]),
    /sums\[0\]\.sums' has 3 elements, expected 32/);
});

t.test('a pattern changed in place (same array, same geometry) is compressed again, not taken from the cache', { skip }, async (t) => {
  const { addon, convGeometry, rng } = await directKernels(31);
  const g = convGeometry([70, 6, 5, 16], [3, 3, 16, 24], { stride: 1, padding: 'same' });
  const x = Float32Array.from({ length: 70 * 6 * 5 * 16 }, () => rng.nextNormal());
  const filter = Float32Array.from({ length: 9 * 16 * 24 }, () => rng.nextNormal());
  const active = Float32Array.from(filter, () => (rng.nextFloat() < 0.2 ? 1 : 0));
  const [inLanes, gradLanes] = addon.sparseConvLaneSizes(g);
  const dy = Float32Array.from({ length: 70 * 6 * 5 * 24 }, () => rng.nextNormal());
  const results = (): Float32Array[] => {
    const [y, dx, dw, dyLanes, xLanes] = [new Float32Array(dy.length), new Float32Array(x.length), new Float32Array(filter.length), new Float32Array(gradLanes), new Float32Array(inLanes)];
    addon.sparseConvForward(g, x, filter, active, y, xLanes);
    addon.sparseConvGradToLanes(g, dy, dyLanes);
    addon.sparseConvBackwardData(g, dyLanes, filter, active, dx);
    addon.sparseConvBackwardWeights(g, xLanes, dyLanes, active, dw);
    return [y, dx, dw];
  };
  // The dense path on filter ⊙ active is the reference for each pattern.
  const reference = (): Float32Array[] => {
    const masked = filter.map((w, i) => w * active[i]);
    const [y, dx, dw] = [new Float32Array(dy.length), new Float32Array(x.length), new Float32Array(filter.length)];
    addon.convForward(g, x, masked, y);
    addon.convBackwardData(g, dy, masked, dx);
    addon.convBackwardWeights(g, x, dy, dw);
    return [y, dx, dw.map((v, i) => v * active[i])];
  };
  const error = (a: Float32Array, b: Float32Array): number => Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / Math.max(...b.map(Math.abs));
  for (let round = 0; round < 3; round++) {
    if (round > 0) for (let i = 0; i < active.length; i += 7) active[i] = active[i] ? 0 : 1;
    const [sparse, dense] = [results(), reference()];
    ['y', 'dx', 'dfilter'].forEach((label, i) => t.ok(error(sparse[i], dense[i]) < 1e-5, `pattern ${round}: ${label} matches the dense path on it`));
  }
});

t.test('lane buffers hold the batch in equal chunks of at most 64 lanes, one chunk after the other', { skip }, async (t) => {
  const { addon, convGeometry } = await directKernels(0);
  const [height, width, inC, outC] = [4, 3, 16, 8];
  // [batch, chunks, lanes per chunk]: equal chunks, each a whole number of 16-lane vectors.
  for (const [batch, chunks, width16] of [[1, 1, 16], [19, 1, 32], [64, 1, 64], [65, 2, 48], [70, 2, 48], [100, 2, 64], [128, 2, 64], [130, 3, 48]]) {
    const g = convGeometry([batch, height, width, inC], [3, 3, inC, outC], { stride: 1, padding: 'same' });
    const [inLanes, gradLanes, outLanes] = addon.sparseConvLaneSizes(g);
    const [inRows, inCols] = [height + 2, width + 2];
    t.equal(inLanes, chunks * inRows * inCols * inC * width16, `batch ${batch}: input lanes are ${chunks} × ${width16}`);
    t.equal(outLanes, chunks * height * width * outC * width16, `batch ${batch}: output lanes are ${chunks} × ${width16}`);
    // dy padded by kernel − 1 above and left, and to the padded input's last row and column + 1 (LaneLayout).
    t.equal(gradLanes, chunks * (height + 3) * (width + 3) * outC * width16, `batch ${batch}: grad lanes are ${chunks} × ${width16}`);
    const x = Float32Array.from({ length: batch * height * width * inC }, (_, i) => i + 1);
    const xLanes = new Float32Array(inLanes).fill(NaN);
    addon.sparseConvForward(g, x, new Float32Array(9 * inC * outC), new Float32Array(9 * inC * outC), new Float32Array(batch * height * width * outC), xLanes);
    // Image n is lane n mod width of chunk ⌊n / width⌋; the chunk's other lanes and its border hold 0.
    let misplaced = 0;
    for (let c = 0; c < chunks; c++)
      for (let r = 0; r < inRows; r++)
        for (let col = 0; col < inCols; col++)
          for (let ci = 0; ci < inC; ci++)
            for (let lane = 0; lane < width16; lane++) {
              const [n, h, w] = [c * width16 + lane, r - 1, col - 1];
              const inside = n < batch && h >= 0 && h < height && w >= 0 && w < width;
              const expected = inside ? x[((n * height + h) * width + w) * inC + ci] : 0;
              if (xLanes[(((c * inRows + r) * inCols + col) * inC + ci) * width16 + lane] !== expected) misplaced++;
            }
    t.equal(misplaced, 0, `batch ${batch}: every input value in its chunk and lane, zeros elsewhere`);
  }
});

t.test('the addon refuses inconsistent lane options with an error naming them; phase timing records only while on', { skip }, async (t) => {
  const { addon, convGeometry } = await directKernels(0);
  const g = convGeometry([4, 5, 5, 16], [3, 3, 16, 16], { stride: 1, padding: 'same' });
  const [inLanes, gradLanes, outLanes] = addon.sparseConvLaneSizes(g);
  const f32 = (n: number): Float32Array => new Float32Array(n);
  const filter = f32(3 * 3 * 16 * 16).fill(0.1);
  const active = f32(filter.length).fill(1);
  const c = 16;
  const forward = (skip: Float32Array | null, skipLanes?: Float32Array, skipGeometry?: number[]): void => {
    addon.sparseConvBnForward(g, 1e-5, true, f32(4 * 5 * 5 * 16), filter, active, f32(c).fill(1), f32(c), f32(4 * 5 * 5 * 16), f32(c), f32(c),
      f32(inLanes), f32(outLanes), null, null, skip, skipLanes, skipGeometry);
  };
  t.throws(() => forward(f32(4 * 5 * 5 * 16), f32(inLanes), g), /skip in NHWC or in lanes, not both/);
  const wider = convGeometry([4, 5, 5, 32], [3, 3, 32, 16], { stride: 1, padding: 'same' });
  t.throws(() => forward(null, f32(addon.sparseConvLaneSizes(wider)[0]), wider), /skip geometry's input is not this convolution's output/);
  t.throws(() => forward(null, f32(3), g), /skipLanes' has 3 elements/);
  t.doesNotThrow(() => forward(null, f32(inLanes), g), 'a skip in the lanes of a geometry with z\'s shape is accepted');
  t.throws(() => addon.sparseConvBackwardData(g, f32(gradLanes), filter, active, f32(4 * 5 * 5 * 16), false, null, f32(inLanes)), /gateLanes needs dx in lanes/);

  addon.setPhaseTiming(false);
  forward(null, f32(inLanes), g);
  t.same(addon.phaseTimes(), {}, 'nothing recorded before timing is turned on');
  addon.setPhaseTiming(true);
  forward(null, f32(inLanes), g);
  addon.setPhaseTiming(false);
  const phases = addon.phaseTimes();
  for (const phase of ['inputToLanes', 'compressFilter', 'forwardGather', 'forwardMoments', 'normalizeToNhwc']) {
    t.ok(phases[phase]?.calls >= 1 && phases[phase].ms >= 0, `${phase} recorded (${JSON.stringify(phases[phase])})`);
  }
  t.notOk('weightsGather' in phases, 'phases that did not run are absent');
  forward(null, f32(inLanes), g);
  t.same(addon.phaseTimes(), phases, 'nothing more recorded once timing is off');
  addon.setPhaseTiming(true);
  t.same(addon.phaseTimes(), {}, 'turning timing on starts from zero');
  addon.setPhaseTiming(false);
});

t.test("ERK at overall density 0.1 and 0.05 sends every 3×3 convolution of resnet20 with 16 or more input channels to the sparse kernels", async (t) => {
  const { prefersSparse } = await import('../../src/compute/sparse-selection');
  const { convGeometry } = await import('../../src/compute/native-kernels');
  const { createModel } = await import('../../src/models/build');
  const { allocateLayers } = await import('../../src/sparse/density');
  const model = createModel('resnet20', { seed: 1 });
  try {
    for (const density of [0.1, 0.05]) {
      const layers = allocateLayers(model.specs, { density, distribution: 'erk' });
      const convs = layers.filter((l) => l.shape.length === 4 && l.shape[0] === 3 && l.shape[2] >= 16);
      t.equal(convs.length, 18, `${density}: 18 candidate convolutions`);
      // The first stage's layers get the highest ERK density: 0.29 at 0.1 (CigL's random mask lowers it),
      // above the earlier threshold of 0.22, which left the most expensive stage on the dense kernels.
      const highest = Math.max(...convs.map((l) => l.density));
      if (density === 0.1) t.ok(highest > 0.22, `${density}: the densest is ${highest.toFixed(3)}`);
      const previous = sparseComputeMode();
      setSparseComputeMode('auto');
      try {
        for (const l of convs) {
          const geometry = convGeometry([128, 32, 32, l.shape[2]], l.shape, { stride: 1, padding: 'same' });
          if (!prefersSparse(geometry, l.density)) t.fail(`${density}: ${l.name} at ${l.density.toFixed(3)} runs dense`);
        }
      } finally {
        setSparseComputeMode(previous);
      }
    }
  } finally {
    model.dispose();
  }
});

t.test('the image layer (3 input channels) runs sparse at the head of a training pair at any density; alone, in evaluation, or 1×1 it stays dense', { skip }, async (t) => {
  const { KERNELS } = await import('../../src/compute/native-kernels');
  const { prefersSparse } = await import('../../src/compute/sparse-selection');
  const { convGeometry } = await import('../../src/compute/native-kernels');
  const image = convGeometry([128, 32, 32, 3], [3, 3, 3, 16], { stride: 1, padding: 'same' });
  const pointwise = convGeometry([128, 32, 32, 3], [1, 1, 3, 16], { stride: 1, padding: 'same' });
  withMode('auto', () => {
    t.ok(prefersSparse(image, 1, 'pairHead'), 'pair head, dense filter: sparse');
    t.notOk(prefersSparse(image, 0.05), 'alone: dense, even at density 0.05');
    t.notOk(prefersSparse(pointwise, 0.5, 'pairHead'), '1×1 pair head: dense');
  });

  // conv1 3→16 at density 0.9 (ERK gives cnn's conv1 0.89 at an overall 0.1), conv2 16→16 at 0.1.
  const c1: Case = { batch: 19, height: 9, width: 7, inChannels: 3, outChannels: 16, kernel: 3, stride: 1, density: 0.9 };
  const c2: Case = { ...c1, inChannels: 16, density: 0.1 };
  const x = tf.randomNormal([19, 9, 7, 3], 0.2, 1, 'float32', 101) as tf.Tensor4D;
  const layers = [c1, c2].map((c, i) => ({
    ...maskedFilter(c, 102 + i),
    gamma: tf.randomUniform([16], 0.5, 1.5, 'float32', 104 + i) as tf.Tensor1D, beta: tf.randomNormal([16], 0, 0.3, 'float32', 106 + i) as tf.Tensor1D,
  }));
  // withX: x's gradient too, so conv1's dy is stored for it (without, only its filter gradient reads it).
  const pair = (training: boolean, withX = false) => {
    const stats = layers.map(() => runningStats(16));
    const out = tf.tidy(() => {
      const f = (f1: tf.Tensor, f2: tf.Tensor, xx = x): tf.Tensor4D => {
        const call = (i: number, filter: tf.Tensor) => ({
          filter: filter as tf.Tensor4D, bn: { gamma: layers[i].gamma, beta: layers[i].beta, stats: stats[i] },
          opts: { stride: 1, padding: 'same' as const, relu: true, training, active: layers[i].active, layer: `image-pair-${i}` },
        });
        return nativeOps.convBnPair!(xx, call(0, f1), call(1, f2));
      };
      const z = f(layers[0].filter, layers[1].filter);
      if (!training) return [z];
      const upstream = tf.randomNormal(z.shape, 0, 1, 'float32', 108);
      const grads = withX
        ? tf.grads((xx: tf.Tensor, f1: tf.Tensor, f2: tf.Tensor) => tf.sum(tf.mul(f(f1, f2, xx as tf.Tensor4D), upstream)))([x, layers[0].filter, layers[1].filter]).slice(1)
        : tf.grads((f1: tf.Tensor, f2: tf.Tensor) => tf.sum(tf.mul(f(f1, f2), upstream)))([layers[0].filter, layers[1].filter]);
      return [z, tf.mul(grads[0], layers[0].active), tf.mul(grads[1], layers[1].active)];
    });
    stats.forEach((s) => tf.dispose([s.mean, s.variance]));
    return out;
  };
  resetSparseComputeReport();
  let auto!: tf.Tensor[];
  const profile = await tf.profile(() => {
    auto = withMode('auto', () => pair(true));
  });
  t.same(sparseComputeReport().map((d) => [d.layer, d.sparse]), [['image-pair-0', true], ['image-pair-1', true]], 'training: both layers sparse');
  t.ok(profile.kernelNames.includes(KERNELS.sparseConvBnPair), 'the pair kernel ran');
  t.notOk(profile.kernelNames.includes(KERNELS.conv2d), 'no dense convolution');
  const dense = withMode('off', () => pair(true));
  ['z', 'dfilter1', 'dfilter2'].forEach((label, i) => {
    const err = relativeError(auto[i], dense[i]);
    t.ok(err < TOLERANCE, `${label} against the dense path: relative error ${err.toExponential(2)}`);
  });
  // Which call took conv1's filter gradient, and from which dy (null: transient), seen through the addon
  // object the kernels call.
  const { requireNativeAddon } = await import('../../src/compute/native-addon');
  const addon = requireNativeAddon();
  const [weightsAlone, data] = [addon.sparseConvBackwardWeights, addon.sparseConvBackwardData];
  const conv1: string[] = [];
  addon.sparseConvBackwardWeights = (g, xLanes, dyLanes, ...rest) => {
    if (g[3] === 3) conv1.push(`filter gradient alone, dy ${dyLanes === null ? 'transient' : 'stored'}`);
    return weightsAlone.call(addon, g, xLanes, dyLanes, ...rest);
  };
  addon.sparseConvBackwardData = (g, dyLanes, ...rest) => {
    if (g[3] === 3) conv1.push(`both gradients${rest[8] ? '' : ' (no filter gradient)'}, dy ${dyLanes === null ? 'transient' : 'stored'}`);
    return data.call(addon, g, dyLanes, ...rest);
  };
  let stored: tf.Tensor[];
  try {
    tf.dispose(withMode('auto', () => pair(true)));
    stored = withMode('auto', () => pair(true, true));
  } finally {
    addon.sparseConvBackwardWeights = weightsAlone;
    addon.sparseConvBackwardData = data;
  }
  t.same(conv1, ['filter gradient alone, dy transient', 'both gradients, dy transient'], "conv1's dy: for its filter gradient alone without x's gradient, for both with it");
  ['dfilter1', 'dfilter2'].forEach((label, i) => {
    const [a, b] = [auto[i + 1].dataSync(), stored[i + 1].dataSync()];
    t.ok(a.every((v, k) => Object.is(v, b[k])), `${label}: bitwise the same with and without x's gradient`);
  });
  resetSparseComputeReport();
  const evaluation = withMode('auto', () => pair(false));
  t.same(sparseComputeReport().map((d) => [d.layer, d.sparse]), [['image-pair-0', false], ['image-pair-1', true]], 'evaluation: the image layer dense');
  tf.dispose([x, ...layers.flatMap((l) => [l.filter, l.active, l.gamma, l.beta]), ...auto, ...dense, ...stored, ...evaluation]);
});

t.test("input 0's gradient: asked for first or not at all (tfjs's order); asked for after the others it is refused", async (t) => {
  const { inputGradientOrder } = await import('../../src/compute/kernel-support');
  const asked = inputGradientOrder('k');
  asked.ask();
  t.ok(asked.wanted(), 'x asked for first: wanted');
  t.doesNotThrow(() => asked.ask(), 'and asked for again');
  const skipped = inputGradientOrder('k');
  t.notOk(skipped.wanted(), 'the others first: not wanted');
  t.throws(() => skipped.ask(), /k: x's gradient asked for after the other inputs'/, 'x asked for afterwards is refused');
});

t.test('in evaluation a pruned filter is its own pattern: the fused sparse evaluation kernel without one given, dense where gradients are recorded', { skip }, async (t) => {
  const { KERNELS } = await import('../../src/compute/native-kernels');
  const c: Case = { batch: 19, height: 9, width: 7, inChannels: 16, outChannels: 24, kernel: 3, stride: 1, density: 0.1 };
  const x = tf.randomNormal([19, 9, 7, 16], 0, 1, 'float32', 141) as tf.Tensor4D;
  const { filter, active } = maskedFilter(c, 142);
  const stats = { mean: tf.variable(tf.randomNormal([24], 0, 0.2, 'float32', 143), false), variance: tf.variable(tf.randomUniform([24], 0.5, 2, 'float32', 144), false), momentum: 0.1, epsilon: 1e-5 };
  const bn = { gamma: tf.randomUniform([24], 0.5, 1.5, 'float32', 145) as tf.Tensor1D, beta: tf.randomNormal([24], 0, 0.3, 'float32', 146) as tf.Tensor1D, stats };
  for (const relu of [true, false]) {
    const opts: ConvBnOptions = { stride: 1, padding: 'same', relu, training: false, layer: 'eval' };
    const run = async (mode: SparseComputeMode) => {
      let y!: tf.Tensor;
      const before = tf.memory().numTensors;
      const profile = await tf.profile(() => { y = withMode(mode, () => nativeOps.convBn(x, filter, bn, opts)); });
      return { y, kernels: profile.kernelNames, added: tf.memory().numTensors - before };
    };
    resetSparseComputeReport();
    const sparse = await run('auto');
    t.same(sparse.kernels, [KERNELS.sparseConvBnInfer], `relu ${relu}: one fused sparse evaluation kernel ran`);
    t.same(sparseComputeReport().map((d) => [d.layer, d.sparse]), [['eval', true]], `relu ${relu}: the decision is recorded`);
    t.equal(sparse.added, 1, `relu ${relu}: only the output tensor is left`);
    const dense = await run('off');
    t.ok(dense.kernels.includes(KERNELS.conv2d) && !dense.kernels.includes(KERNELS.sparseConvBnInfer), `relu ${relu}: mode off: the dense convolution`);
    const err = relativeError(sparse.y, dense.y);
    t.ok(err < TOLERANCE, `relu ${relu}: the dense kernels' output (relative error ${err.toExponential(2)})`);
    // The stock ops (tfjs' own convolution and BatchNorm) agree too.
    const stock = stockOps.convBn(x, filter, bn, opts);
    const stockErr = relativeError(sparse.y, stock);
    t.ok(stockErr < TOLERANCE, `relu ${relu}: the stock ops' output (relative error ${stockErr.toExponential(2)})`);
    tf.dispose([sparse.y, dense.y, stock]);
  }
  const opts: ConvBnOptions = { stride: 1, padding: 'same', relu: true, training: false, layer: 'eval' };
  // Where a gradient is recorded the pattern would cut the filter gradient of zero weights: dense there.
  const withGradient = await tf.profile(() => {
    tf.dispose(tf.grads((ff: tf.Tensor) => tf.sum(withMode('auto', () => nativeOps.convBn(x, ff as tf.Tensor4D, bn, opts))))([filter]));
  });
  t.notOk(withGradient.kernelNames.some((k) => k === KERNELS.sparseConvBnInfer || k === KERNELS.sparseConv2d), 'recording a gradient: no sparse convolution');
  // A dense filter stays on the dense kernels.
  const full = tf.randomNormal([3, 3, 16, 24], 0, 0.2, 'float32', 147) as tf.Tensor4D;
  const denseFilter = await tf.profile(() => { tf.dispose(withMode('auto', () => nativeOps.convBn(x, full, bn, opts))); });
  t.notOk(denseFilter.kernelNames.includes(KERNELS.sparseConvBnInfer), 'a dense filter: dense kernels');
  tf.dispose([x, filter, active, full, bn.gamma, bn.beta, stats.mean, stats.variance]);
});

t.test('residual blocks in evaluation (identity and projection blocks, with a head) run as one forward-only kernel and match the dense and stock ops', { skip }, async (t) => {
  const { KERNELS } = await import('../../src/compute/native-kernels');
  const [batch, height, width] = [19, 9, 7];
  // Pruned filters with the pruned weights at exactly 0 (what evaluation sees: M ⊙ W), running statistics as trained.
  const layer = (inChannels: number, outChannels: number, kernel: number, stride: number, relu: boolean, seed: number) => {
    const { filter, active } = maskedFilter({ batch, height, width, inChannels, outChannels, kernel, stride, density: kernel === 1 ? 0.5 : 0.2 }, seed);
    const stats = {
      mean: tf.variable(tf.randomNormal([outChannels], 0, 0.3, 'float32', seed + 10), false),
      variance: tf.variable(tf.randomUniform([outChannels], 0.5, 3, 'float32', seed + 20), false), momentum: 0.1, epsilon: 1e-5,
    };
    const gamma = tf.randomUniform([outChannels], 0.5, 1.5, 'float32', seed + 30) as tf.Tensor1D;
    const beta = tf.randomNormal([outChannels], 0, 0.3, 'float32', seed + 40) as tf.Tensor1D;
    return {
      call: { filter, bn: { gamma, beta, stats }, opts: { stride, padding: 'same' as const, relu, training: false, layer: `l${seed}` } },
      tensors: [filter, active, gamma, beta, stats.mean, stats.variance],
    };
  };
  const identity = (channels: number, seed: number) => [layer(channels, channels, 3, 1, true, seed), layer(channels, channels, 3, 1, false, seed + 1)];
  const projection = (from: number, to: number, seed: number) => [layer(from, to, 3, 2, true, seed), layer(to, to, 3, 1, false, seed + 1), layer(from, to, 1, 2, false, seed + 2)];
  const cases = [
    { name: 'three identity blocks', input: 16, head: undefined, blocks: [identity(16, 100), identity(16, 200), identity(16, 300)] },
    { name: 'a head, an identity block, a projection at stride 2, an identity block', input: 3, head: layer(3, 16, 3, 1, true, 400),
      blocks: [identity(16, 500), projection(16, 24, 600), identity(24, 700)] },
  ];
  // Batch 70 as well: two lane chunks (48 and 22 images), each block's skip from its own chunk.
  for (const [{ name: blocksName, input, head, blocks }, images] of cases.flatMap((c) => [[c, batch], [c, 70]] as const)) {
    const name = `${blocksName}, batch ${images}`;
    const x = tf.randomNormal([images, height, width, input], 0.1, 1, 'float32', 151) as tf.Tensor4D;
    const calls = blocks.map((block) => block.map((l) => l.call) as unknown as ResidualBlockCall);
    const before = tf.memory().numTensors;
    let fused!: tf.Tensor;
    const profile = await tf.profile(() => { fused = withMode('auto', () => nativeOps.residualBlocks!(x, calls, head?.call)); });
    t.same(profile.kernelNames, [KERNELS.sparseResidualBlocksInfer], `${name}: one forward-only kernel`);
    t.equal(tf.memory().numTensors - before, 1, `${name}: only the output tensor is left`);
    const dense = withMode('off', () => nativeOps.residualBlocks!(x, calls, head?.call));
    const stock = tf.tidy(() => {
      const convBn = (h: tf.Tensor4D, c: ConvBnCall): tf.Tensor4D => stockOps.convBn(h, c.filter, c.bn, c.opts);
      const start = head ? convBn(x, head.call) : x;
      return calls.reduce((h, [first, second, shortcut]) => stockOps.addRelu(convBn(convBn(h, first), second), shortcut ? convBn(h, shortcut) : h), start);
    });
    for (const [label, reference] of [['dense kernels', dense], ['stock ops', stock]] as const) {
      const err = relativeError(fused, reference);
      t.ok(err < TOLERANCE, `${name}: the ${label}' output (relative error ${err.toExponential(2)})`);
    }
    t.ok(tf.tidy(() => tf.max(tf.abs(fused)).dataSync()[0]) > 0, `${name}: the output is not zero`);
    tf.dispose([x, fused, dense, stock]);
  }
  tf.dispose(cases.flatMap(({ head, blocks }) => [...(head ? [head] : []), ...blocks.flat()].flatMap((l) => l.tensors)));
});
