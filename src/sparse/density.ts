import type { ParamSpec } from '../models/model';
import { sizeOf } from '../util/named-arrays';

/**
 * How many weights each masked layer keeps alive. Conv and dense weights are masked, biases and BatchNorm
 * never; the classifier (the last dense layer, ParamSpec.maskable false) only with `maskClassifier`, as
 * the authors' sparselearning code does. With `keepFirstDense` the first masked layer is left dense and
 * unmasked, and the target density applies to the remaining masked layers (as google rigl's
 * custom-sparsity layers, which ERK ignores).
 */
export const DENSITY_DISTRIBUTIONS = ['uniform', 'erk'] as const;
export type DensityDistribution = (typeof DENSITY_DISTRIBUTIONS)[number];

export interface LayerDensityOptions {
  /** Fraction of the masked layers' weights that stay active, in (0, 1]. */
  readonly density: number;
  readonly distribution: DensityDistribution;
  /** Leave the first maskable layer dense and unmasked (default false). */
  readonly keepFirstDense?: boolean;
  /** Mask the classifier too (default false, as the PyTorch peer). */
  readonly maskClassifier?: boolean;
}

export interface LayerAllocation {
  /** Parameter name (ParamSpec.name) of the masked weight. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly size: number;
  /** Exact number of active weights, kept through every mask update. */
  readonly active: number;
  /** active / size. */
  readonly density: number;
}

/** The parameters a sparse method masks, in forward order. */
export function maskedSpecs(specs: readonly ParamSpec[], options: Pick<LayerDensityOptions, 'keepFirstDense' | 'maskClassifier'> = {}): ParamSpec[] {
  const maskable = specs.filter((s) => s.maskable || (options.maskClassifier === true && s.kind === 'dense'));
  return options.keepFirstDense ? maskable.slice(1) : maskable;
}

/**
 * Per-layer exact active counts. The total is round(density × Σ size) exactly.
 *
 * Rounding: each layer's real-valued share (density × size for uniform, ε·raw × size for ERK) is
 * floored, then the remaining units go one each to the layers with the largest fractional parts
 * (largest-remainder method; ties to the earlier layer), never above a layer's size.
 */
export function allocateLayers(specs: readonly ParamSpec[], options: LayerDensityOptions): LayerAllocation[] {
  const { density, distribution } = options;
  if (!(density > 0 && density <= 1)) throw new Error(`sparsity.density must be in (0, 1], got ${String(density)}`);
  if (!DENSITY_DISTRIBUTIONS.includes(distribution)) {
    throw new Error(`sparsity.distribution must be one of ${DENSITY_DISTRIBUTIONS.join(', ')}, got '${String(distribution)}'`);
  }
  const layers = maskedSpecs(specs, options);
  const shapes = layers.map((s) => s.shape);
  const densities = distribution === 'erk' ? erkDensities(shapes, density) : shapes.map(() => density);
  const sizes = shapes.map(sizeOf);
  const target = Math.round(density * sizes.reduce((a, b) => a + b, 0));
  const counts = largestRemainder(densities.map((d, i) => d * sizes[i]), sizes, target);
  return layers.map((s, i) => ({ name: s.name, shape: s.shape, size: sizes[i], active: counts[i], density: counts[i] / sizes[i] }));
}

/**
 * Erdős–Rényi–Kernel densities: raw_l = Σ shape / Π shape (for a conv (kh, kw, cin, cout) that is
 * (kh+kw+cin+cout)/(kh·kw·cin·cout); for a dense (nin, nout), (nin+nout)/(nin·nout)), density_l = ε·raw_l
 * with ε chosen so Σ density_l·size_l = density·Σ size_l. Layers whose density would exceed 1 are made
 * dense and ε is solved again over the rest (google rigl's get_sparsities_erdos_renyi).
 */
export function erkDensities(shapes: readonly (readonly number[])[], density: number): number[] {
  const sizes = shapes.map(sizeOf);
  const raw = shapes.map((s, i) => s.reduce((a, b) => a + b, 0) / sizes[i]);
  const budget = density * sizes.reduce((a, b) => a + b, 0);
  const dense = new Set<number>();
  for (;;) {
    const sparse = raw.map((_, i) => i).filter((i) => !dense.has(i));
    if (sparse.length === 0) return shapes.map(() => 1);
    const denseSize = [...dense].reduce((a, i) => a + sizes[i], 0);
    const divisor = sparse.reduce((a, i) => a + raw[i] * sizes[i], 0);
    const epsilon = (budget - denseSize) / divisor;
    const maxRaw = Math.max(...sparse.map((i) => raw[i]));
    if (epsilon * maxRaw <= 1) return raw.map((r, i) => (dense.has(i) ? 1 : epsilon * r));
    for (const i of sparse) if (raw[i] === maxRaw) dense.add(i);
  }
}

/** Integer counts ≤ caps summing to `total`, as close as possible to the real shares. */
function largestRemainder(shares: readonly number[], caps: readonly number[], total: number): number[] {
  const counts = shares.map((s, i) => Math.min(caps[i], Math.floor(s)));
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = shares.map((_, i) => i).sort((a, b) => shares[b] - Math.floor(shares[b]) - (shares[a] - Math.floor(shares[a])) || a - b);
  // Normally one pass suffices (left < number of layers); the loop only guards float edge cases.
  while (left > 0) {
    let placed = false;
    for (const i of order) {
      if (left === 0) break;
      if (counts[i] < caps[i]) {
        counts[i]++;
        left--;
        placed = true;
      }
    }
    if (!placed) break;
  }
  return counts;
}
