/**
 * Equal-width confidence bins and the per-bin table they produce.
 *
 * Convention: [0, 1] is split into B bins with edges e_b = b / B (computed in float64). Bin b holds the
 * confidences c with e_b < c ≤ e_{b+1}, as the authors' code and torchmetrics bin them; the first bin also
 * holds c = 0, so it is [0, e_1]. Hence a confidence of exactly 0 falls in the first bin, exactly 1 in the
 * last, and a confidence equal to an inner edge e_b in bin b − 1 (the bin it closes), decided against the
 * very edge values the table reports.
 */

/** One row of a reliability table. Empty bins have count 0 and null means. */
export interface BinRow {
  /** Lower edge (exclusive, except 0 for the first bin). For equal-mass bins: the smallest confidence in the bin. */
  readonly lower: number;
  /** Upper edge (inclusive). For equal-mass bins: the largest confidence. */
  readonly upper: number;
  readonly count: number;
  /** Mean confidence of the examples in the bin; null when empty. */
  readonly meanConfidence: number | null;
  /** Fraction of them predicted correctly; null when empty. */
  readonly accuracy: number | null;
}

export function checkBinCount(bins: number, what: string): void {
  if (!(Number.isInteger(bins) && bins >= 1)) {
    throw new Error(`${what}: bin count must be a positive integer, got ${bins}`);
  }
}

/** Lower edge of bin b of B equal-width bins. */
export function binEdge(b: number, bins: number): number {
  return b / bins;
}

/** The equal-width bin (0 … bins−1) that holds confidence c ∈ [0, 1] (see the convention above). */
export function binIndex(c: number, bins: number): number {
  if (!(c >= 0 && c <= 1)) throw new Error(`binIndex: confidence must be in [0, 1], got ${c}`);
  let b = Math.max(0, Math.min(bins - 1, Math.ceil(c * bins) - 1));
  // c·B can round across an edge; settle against the exact edge values.
  if (b > 0 && c <= binEdge(b, bins)) b--;
  else if (b < bins - 1 && c > binEdge(b + 1, bins)) b++;
  return b;
}

/**
 * Sums per bin: how many examples, their summed confidence and how many were right. ECE and MCE use the
 * sums directly (|correct_b − confidence_b| / N) so that no mean is rounded before the difference.
 */
export interface BinSums {
  readonly count: Float64Array;
  readonly confidence: Float64Array;
  readonly correct: Float64Array;
}

export function newBinSums(bins: number): BinSums {
  return { count: new Float64Array(bins), confidence: new Float64Array(bins), correct: new Float64Array(bins) };
}

/** ECE = Σ_b (n_b/N)·|acc_b − conf_b| and MCE = max over non-empty bins of |acc_b − conf_b|. */
export function calibrationGaps(sums: BinSums, total: number): { ece: number; mce: number } {
  let gapSum = 0;
  let mce = 0;
  for (let b = 0; b < sums.count.length; b++) {
    const n = sums.count[b];
    if (n === 0) continue;
    const gap = Math.abs(sums.correct[b] - sums.confidence[b]);
    gapSum += gap;
    mce = Math.max(mce, gap / n);
  }
  return { ece: gapSum / total, mce };
}

/** The per-bin table; `edges(b)` gives a bin's [lower, upper]. */
export function binTable(sums: BinSums, edges: (b: number) => readonly [number, number]): BinRow[] {
  const rows: BinRow[] = [];
  for (let b = 0; b < sums.count.length; b++) {
    const n = sums.count[b];
    const [lower, upper] = edges(b);
    rows.push({
      lower,
      upper,
      count: n,
      meanConfidence: n > 0 ? sums.confidence[b] / n : null,
      accuracy: n > 0 ? sums.correct[b] / n : null,
    });
  }
  return rows;
}

/** Edges of equal-width bins, as the table reports them. */
export function equalWidthEdges(bins: number): (b: number) => readonly [number, number] {
  return (b) => [binEdge(b, bins), b === bins - 1 ? 1 : binEdge(b + 1, bins)];
}
