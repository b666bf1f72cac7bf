/**
 * Which masked convolutions run on the sparse kernels (native/src/sparse_conv.h) instead of oneDNN's
 * dense ones. A convolution is a candidate only when the caller passes its active pattern (the
 * trainer does on every step except mask-update steps, which need the exact dense gradient); then
 *  - 'auto' (default) picks the sparse kernels where they were measured faster (prefersSparse),
 *  - 'on' always picks them and 'off' never does (tests compare both paths; CIGL_SPARSE_CONV sets it).
 * In training the sparse convolution runs fused with its BatchNorm, and two chained layers (a residual
 * block's body) as one kernel whose activation between them stays in the lane layout.
 * Each decision is recorded per layer, so a benchmark can say which layers ran sparse.
 */
export type SparseComputeMode = 'auto' | 'on' | 'off';
export const SPARSE_COMPUTE_MODES: readonly SparseComputeMode[] = ['auto', 'on', 'off'];

function modeFromEnvironment(): SparseComputeMode {
  const value = process.env.CIGL_SPARSE_CONV ?? 'auto';
  if (!(SPARSE_COMPUTE_MODES as readonly string[]).includes(value)) {
    throw new Error(`CIGL_SPARSE_CONV must be one of ${SPARSE_COMPUTE_MODES.join(', ')}, got '${value}'`);
  }
  return value as SparseComputeMode;
}

let mode: SparseComputeMode = modeFromEnvironment();

export function sparseComputeMode(): SparseComputeMode {
  return mode;
}

export function setSparseComputeMode(next: SparseComputeMode): void {
  if (!SPARSE_COMPUTE_MODES.includes(next)) throw new Error(`sparse compute mode must be one of ${SPARSE_COMPUTE_MODES.join(', ')}, got '${String(next)}'`);
  mode = next;
}

/** Fraction of nonzero entries. */
export function activeFraction(active: ArrayLike<number>): number {
  let count = 0;
  for (let i = 0; i < active.length; i++) if (active[i] !== 0) count++;
  return active.length ? count / active.length : 0;
}

/**
 * The measured rule. `npm run bench:sparse-conv` (batch 128, one thread, CPU time, best of 3, one
 * training step's convolution work: sparse forward + dy to lanes + input and filter gradients vs
 * oneDNN's three passes), 2026-11-29 on a busy 2-core EPYC, sparse ÷ dense at densities 0.05 / 0.1 / 0.2:
 *   32×32 16→16 3×3       0.75 / 0.83 / 1.16     16×16 32→32 3×3       0.49 / 0.61 / 0.86
 *   32×32 16→32 3×3 s2    0.67 / 0.88 / 1.03     16×16 32→64 3×3 s2    0.47 / 0.60 / 0.83
 *   8×8 64→64 3×3         0.50 / 0.84 / 1.41     32×32 32→32 3×3 (cnn) 0.56 / 0.73 / 1.08
 *   16×16 64→64 3×3 (cnn) 0.51 / 0.74 / 1.23
 *   1×1 s2 shortcuts      1.2–1.5 at every density (too little arithmetic to pay for the transposes)
 * The sparse kernels pay batch transposes (x and dy to lanes, y and dx back), so they win only where the
 * skipped arithmetic outweighs them: 3×3 filters up to density ~0.15 per layer in isolation (the whole-step
 * checks below, with the fused kernels, set the threshold).
 * The first layer (3 input channels) stays dense on its own: its input gradient is never needed, and its
 * forward plus filter gradient take 2.5 ms on oneDNN against 3.7 ms sparse (the dy transpose dominates);
 * at the head of a fused pair it goes sparse (ConvRole).
 * Re-checked in whole steps after the BatchNorm fusion (2 threads, resnet20, 2026-11-29): density 0.2
 * with every convolution sparse took 163 ms against 149 ms dense, 0.3 took 191 against 153; at 0.1 the
 * rule's 18 layers took the step from 145 to 113 ms. Then the buffers were cache-line aligned (see
 * BufferPool), which sped the gathers up more than oneDNN; whole steps again (`npm run bench:step --
 * MODEL DENSITY on|off`, alternating, 2 threads, 2026-11-29, sparse vs dense ms): resnet20 d0.2 151–153
 * vs 170–177, d0.25 169–172 vs 178–180, d0.3 165–201 vs 175–176; cnn d0.2 80–82 vs 88–97, d0.3 102–103
 * vs 97–99. Break-even lay near 0.25–0.3, and the threshold was 0.22. After consecutive identity blocks
 * ran as one kernel (activations in lanes between blocks), whole steps again, 2026-12-03, 2-core Xeon,
 * every masked convolution sparse (on) vs none (off), ms: resnet20 uniform 0.3 147–156 vs 157–160; cnn
 * 0.25 72–74 vs 79, 0.3 82–84 vs 80–81. ERK, the paper's distribution, gives resnet20's first stage
 * density 0.29 at an overall 0.1 (0.26 under CigL's random mask), which the threshold of 0.22 sent to
 * the dense kernels: the auto rule's step took 136–141 ms with 0.22 and 123–126 ms with 0.3 (ERK 0.2:
 * 161 vs 153). The threshold is now 0.3: resnet20's break-even, cnn's lies a little below it.
 */
export const SPARSE_DENSITY_THRESHOLD = 0.3;
export const SPARSE_MIN_INPUT_CHANNELS = 16;

/**
 * Where the convolution sits: `pairHead` is the first layer of a chained pair in training, whose output
 * goes straight into the second convolution's input lanes when both run sparse.
 *
 * A pair head with few input channels (the image layer) runs sparse at any density: the alternative is
 * not only oneDNN's convolution but its BatchNorm in NHWC (forward and backward passes over the whole
 * activation), the transpose of its output into the pair's lanes and of the input gradient back, all of
 * which the fused pair kernel avoids; the input gradient of the image is never computed. Whole steps,
 * 2026-12-03, 2-core Xeon, alternating, ms, image layer dense vs sparse: cnn ERK 0.1 (its conv1 at
 * density 0.89) 67.3–68.3 vs 63.5; cnn ERK 0.05 (conv1 0.45) 57.4–57.7 vs 51.8–52.5; cnn uniform 0.1
 * 63.8–64.7 vs 59.0–60.7. Not a pair head (resnet20's stem, followed by a residual block): 127–130 vs
 * 126–131, no gain, so the rule stays as it was there.
 *
 * `blockShortcut` is the 1×1 shortcut of a projection block whose body runs as a fused sparse pair: it
 * runs sparse at any density, since it then reads the body's input lanes and joins in lanes (see the
 * residual-blocks kernel in residual-blocks-kernels.ts); alone, a 1×1 convolution stays on oneDNN. `blocksHead` is
 * the convolution before a run of residual blocks on that kernel (resnet20's stem): it runs sparse at any
 * density, writing the first block's input lanes, as a pair head does (in evaluation too, where the run
 * is the forward-only kernel).
 */
export type ConvRole = 'alone' | 'pairHead' | 'blockShortcut' | 'blocksHead';

/** Geometry as convGeometry returns it: [batch, inH, inW, inC, outC, kH, kW, ...]. */
export function prefersSparse(geometry: readonly number[], density: number, role: ConvRole = 'alone'): boolean {
  if (mode !== 'auto') return mode === 'on';
  if (role === 'blockShortcut' || role === 'blocksHead') return true;
  const [, , , inChannels, , kernelHeight, kernelWidth] = geometry;
  if (kernelHeight * kernelWidth === 1) return false;
  if (inChannels < SPARSE_MIN_INPUT_CHANNELS) return role === 'pairHead';
  return density <= SPARSE_DENSITY_THRESHOLD;
}

export interface LayerComputeDecision {
  readonly layer: string;
  readonly density: number;
  readonly sparse: boolean;
}

const decisions = new Map<string, LayerComputeDecision>();

export function recordDecision(decision: LayerComputeDecision): void {
  decisions.set(decision.layer, decision);
}

/** The latest decision for every layer seen since the last reset, in first-seen order. */
export function sparseComputeReport(): LayerComputeDecision[] {
  return [...decisions.values()];
}

export function resetSparseComputeReport(): void {
  decisions.clear();
}
