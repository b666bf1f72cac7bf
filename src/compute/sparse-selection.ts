/**
 * Which masked convolutions run on the sparse kernels (native/src/sparse_conv.h) instead of oneDNN's
 * dense ones. A convolution is a candidate only when the caller passes its active pattern (the
 * trainer does on every step except mask-update steps, which need the exact dense gradient); then
 *  - 'auto' (default) picks the sparse kernels where they were measured faster (prefersSparse),
 *  - 'on' always picks them and 'off' never does (tests compare both paths; CIGL_SPARSE_CONV sets it).
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
 * The measured rule (test/bench: /tmp-free microbenchmark in bench/sparse-conv.ts; batch 128, one
 * thread, training step = forward + dy transpose + input gradient + filter gradient, sparse time ÷
 * oneDNN time; see the table there). The sparse kernels pay two batch transposes per pass, so they win
 * only when the skipped arithmetic outweighs them:
 *  - 3×3 filters with ≥ 16 input channels: sparse ≤ 0.89× dense at density 0.1, ~1.0× at 0.12–0.15,
 *    1.2–1.3× at 0.2: threshold density ≤ SPARSE_DENSITY_THRESHOLD.
 *  - 1×1 filters (resnet shortcuts): 1.4–2.7× slower even at density 0.1 (little arithmetic to skip).
 *  - the first layer (3 input channels): its input gradient is never needed, and without it oneDNN wins.
 */
export const SPARSE_DENSITY_THRESHOLD = 0.12;
export const SPARSE_MIN_INPUT_CHANNELS = 16;

/** Geometry as convGeometry returns it: [batch, inH, inW, inC, outC, kH, kW, ...]. */
export function prefersSparse(geometry: readonly number[], density: number): boolean {
  if (mode !== 'auto') return mode === 'on';
  const [, , , inChannels, , kernelHeight, kernelWidth] = geometry;
  return density <= SPARSE_DENSITY_THRESHOLD && inChannels >= SPARSE_MIN_INPUT_CHANNELS && kernelHeight * kernelWidth > 1;
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
