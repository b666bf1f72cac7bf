/**
 * Sparse vs dense convolution microbenchmark (`npm run bench:sparse-conv`): for each convolution
 * shape of resnet20 and cnn at batch 128, the time of one training step's convolution work, forward +
 * input gradient + filter gradient, on oneDNN (dense) and on the sparse kernels (forward, dy to lanes,
 * input gradient, filter gradient), interleaved in one process; the best of `--repeats` for each.
 * Reports sparse ÷ dense: below 1 the sparse kernels win. Times are the calling thread's CPU time with
 * one thread (default), so a busy machine inflates them less than wall time would; the ratios are what
 * sparse-selection.ts's threshold is set from. The sparse time is also shown by part (forward, dy to
 * lanes, input gradient, filter gradient) from the repeat with the best total.
 *
 * With `--cold`, a 256 MB buffer is written before every call, so each call starts with its operands
 * in memory rather than in cache, as in a training step whose activations exceed the cache: the gathers
 * then measured about twice as slow (the input gradient of 32×32 16→16 at density 0.1: 0.65 → 1.40 ms
 * with 2 threads), the dense convolutions much less.
 *
 *   npm run bench:sparse-conv -- [--densities 0.05,0.1,0.2] [--repeats 5] [--threads 1] [--cold]
 */
import { bufferPool } from '../src/compute/buffer-pool';
import { requireNativeAddon } from '../src/compute/native-addon';
import { Rng } from '../src/util/rng';

const BATCH = 128;

/** [input size, in channels, out channels, kernel, stride] of resnet20's and cnn's convolutions. */
const SHAPES: readonly (readonly [number, number, number, number, number])[] = [
  [32, 3, 16, 3, 1], [32, 16, 16, 3, 1], [32, 16, 32, 3, 2], [32, 16, 32, 1, 2], [16, 32, 32, 3, 1], [16, 32, 64, 3, 2],
  [16, 32, 64, 1, 2], [8, 64, 64, 3, 1], [32, 32, 32, 3, 1], [16, 64, 64, 3, 1],
];

/** The addon's geometry for 'same' padding (tfjs's rule: the extra row/column goes bottom/right). */
function geometry(size: number, inChannels: number, outChannels: number, kernel: number, stride: number): number[] {
  const out = Math.ceil(size / stride);
  const pad = Math.max((out - 1) * stride + kernel - size, 0);
  const before = Math.floor(pad / 2);
  return [BATCH, size, size, inChannels, outChannels, kernel, kernel, stride, stride, out, out, before, before, pad - before, pad - before];
}

function main(): void {
  const args = process.argv.slice(2);
  const option = (name: string, fallback: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
  };
  const densities = option('--densities', '0.05,0.1,0.2').split(',').map(Number);
  const repeats = Number(option('--repeats', '5'));
  const threads = Number(option('--threads', '1'));
  const cold = args.includes('--cold');
  const evicting = new Float32Array(cold ? (256 << 20) / 4 : 0);
  // Writes a line of every 64 bytes of a buffer larger than the caches, so what was in them is gone.
  const evict = (): void => {
    for (let i = 0; i < evicting.length; i += 16) evicting[i] += 1;
  };
  const addon = requireNativeAddon();
  addon.setNumThreads(threads);
  const clock = (): number => (threads === 1 ? addon.threadCpuSeconds() * 1000 : performance.now());
  const rng = new Rng(1);
  // Arrays start on a 64-byte boundary (large ones on huge pages), as the buffer pool hands them to the
  // kernels in training: from a plain JavaScript array every vector load straddles two cache lines,
  // which made the gathers 1.7× slower.
  bufferPool.alignWith((array) => addon.byteAlignment(array));
  bufferPool.hugePagesFrom((bytes) => addon.hugePageBuffer(bytes));
  const zeros = (n: number): Float32Array => bufferPool.alignedArray(n);
  const filled = (n: number, value: (i: number) => number): Float32Array => {
    const a = zeros(n);
    for (let i = 0; i < n; i++) a[i] = value(i);
    return a;
  };
  const random = (n: number): Float32Array => filled(n, () => rng.nextNormal());

  console.log(`batch ${BATCH}, ${threads} thread(s), best of ${repeats}${cold ? ', caches evicted before every call' : ''}; ms per training step's convolution work\n`);
  console.log('| shape | density | dense fwd+bwd ms | sparse fwd+bwd ms | sparse ÷ dense | sparse: forward / dy to lanes / input grad / filter grad |');
  console.log('|---|---|---|---|---|---|');
  for (const [size, inC, outC, kernel, stride] of SHAPES) {
    const g = geometry(size, inC, outC, kernel, stride);
    const x = random(BATCH * size * size * inC);
    const dy = random(BATCH * g[9] * g[10] * outC);
    const y = zeros(dy.length);
    const dx = zeros(x.length);
    const [inputLanes, gradLanes] = addon.sparseConvLaneSizes(g);
    const xLanes = zeros(inputLanes);
    const dyLanes = zeros(gradLanes);
    for (const density of densities) {
      const filterSize = kernel * kernel * inC * outC;
      const active = filled(filterSize, () => (rng.nextFloat() < density ? 1 : 0));
      const w = random(filterSize);
      for (let i = 0; i < filterSize; i++) w[i] *= active[i];
      const dw = zeros(filterSize);
      // Each call timed on its own (the eviction between calls stays outside the clock).
      const timed = (calls: (() => void)[]): number[] => calls.map((call) => {
        evict();
        const t = clock();
        call();
        return clock() - t;
      });
      const sum = (parts: number[]): number => parts.reduce((a, b) => a + b, 0);
      let dense = Infinity;
      let sparse = [Infinity];
      for (let r = 0; r <= repeats; r++) {
        const denseParts = timed([() => addon.convForward(g, x, w, y), () => addon.convBackwardData(g, dy, w, dx), () => addon.convBackwardWeights(g, x, dy, dw)]);
        const sparseParts = timed([
          () => addon.sparseConvForward(g, x, w, active, y, xLanes),
          () => addon.sparseConvGradToLanes(g, dy, dyLanes),
          () => addon.sparseConvBackwardData(g, dyLanes, w, active, dx),
          () => addon.sparseConvBackwardWeights(g, xLanes, dyLanes, active, dw),
        ]);
        if (r === 0) continue;
        dense = Math.min(dense, sum(denseParts));
        if (sum(sparseParts) < sum(sparse)) sparse = sparseParts;
      }
      const shape = `${size}×${size} ${inC}→${outC} ${kernel}×${kernel} s${stride}`;
      const total = sum(sparse);
      console.log(`| ${shape} | ${density} | ${dense.toFixed(2)} | ${total.toFixed(2)} | ${(total / dense).toFixed(2)} | ${sparse.map((t) => t.toFixed(2)).join(' / ')} |`);
    }
  }
}

main();
