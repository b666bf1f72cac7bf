import { formatSparsity, formatStats, type MetricStats } from './comparison';

/**
 * The paper's "double descent" of ECE over sparsity (its Figure 1c: ECE rises with sparsity, dips, then
 * rises again), looked for in one method's curve by a rule stated in the report:
 *
 * The points, in order of increasing sparsity (the dense model first, at 0%, when given), show the double
 * descent when four of them, a < b < c < d in that order, have ECE(b) > ECE(a), ECE(c) < ECE(b) and
 * ECE(d) > ECE(c) (a rise to a local maximum, a fall, a rise again), each of the three changes larger
 * than two standard errors of the difference of the two means (SE = √(s₁²/n₁ + s₂²/n₂)). A point with one
 * seed has no spread of its own; it borrows the largest seed-to-seed standard deviation measured on the
 * same curve (the assumption, stated in the report: the spread at the sparsities run once is no larger
 * than the largest one measured). Studies run the extremes of the sparsity grid with one seed to afford
 * them, and without the borrowed spread a pattern through them could never be judged.
 *
 * Verdicts: `appears` (such four points exist); `within noise` (the means rise, fall and rise, but no
 * such four points have all three changes beyond two standard errors); `unresolved` (the means show the
 * pattern, but a change involves a one-seed point and no point of the curve has several seeds);
 * `absent` (the means never rise, fall and rise); `cannot be tested` (fewer than four points).
 */
export type DoubleDescentVerdict = 'appears' | 'within noise' | 'unresolved' | 'absent' | 'cannot be tested';

export interface CurvePoint {
  readonly density: number;
  readonly ece: MetricStats;
}

export interface DoubleDescent {
  readonly verdict: DoubleDescentVerdict;
  /** The points, in order of increasing sparsity. */
  readonly points: readonly CurvePoint[];
  /** The four points a, b, c, d that show the pattern best (for `appears`, `within noise`, `unresolved`). */
  readonly witness?: readonly [CurvePoint, CurvePoint, CurvePoint, CurvePoint];
  /** One sentence with the numbers. */
  readonly detail: string;
  /** The standard deviation lent to one-seed points (absent when the curve has no point with several seeds). */
  readonly borrowedStd?: number;
  /** Whether the witness judges a one-seed point with the borrowed spread (the verdict rests on the assumption). */
  readonly witnessBorrows: boolean;
}

export const DOUBLE_DESCENT_RULE =
  'in order of increasing sparsity (dense first, at 0%), four points a < b < c < d with ECE rising from a to b, falling from b to c and rising from c to d, ' +
  'each change larger than two standard errors of the difference of the two means; a point run with one seed takes the largest seed-to-seed standard deviation measured on the same curve ' +
  '(assumed: the spread at a sparsity run once is no larger), and without any point with several seeds a pattern through a one-seed point is unresolved';

/** How far a change is beyond its noise: |Δ| / SE, undefined when a side has no spread. */
function zScore(from: MetricStats, to: MetricStats): number | undefined {
  if (from.std === undefined || to.std === undefined) return undefined;
  const se = Math.sqrt(from.std ** 2 / from.n + to.std ** 2 / to.n);
  return se > 0 ? Math.abs(to.mean - from.mean) / se : Infinity;
}

export function doubleDescent(curve: readonly CurvePoint[]): DoubleDescent {
  const spreads = curve.filter((p) => p.ece.n >= 2 && p.ece.std !== undefined).map((p) => p.ece.std!);
  const borrowedStd = spreads.length > 0 ? Math.max(...spreads) : undefined;
  const spreadOf = (p: CurvePoint): MetricStats => (p.ece.std === undefined && borrowedStd !== undefined ? { ...p.ece, std: borrowedStd } : p.ece);
  const points = [...curve].sort((a, b) => b.density - a.density);
  if (points.length < 4) {
    return { verdict: 'cannot be tested', points, witnessBorrows: false, detail: `${points.length} point${points.length === 1 ? '' : 's'}: at least four sparsities are needed for a rise, a fall and a rise` };
  }
  type Candidate = { idx: [number, number, number, number]; score: number; judged: boolean; resolved: boolean };
  const candidates: Candidate[] = [];
  const n = points.length;
  for (let a = 0; a < n; a++)
    for (let b = a + 1; b < n; b++)
      for (let c = b + 1; c < n; c++)
        for (let d = c + 1; d < n; d++) {
          const [A, B, C, D] = [a, b, c, d].map((i) => spreadOf(points[i]));
          if (!(B.mean > A.mean && C.mean < B.mean && D.mean > C.mean)) continue;
          const z = [zScore(A, B), zScore(B, C), zScore(C, D)];
          const judged = z.every((v) => v !== undefined);
          const resolved = judged && z.every((v) => v! > 2);
          // Best witness: the largest smallest change (in standard errors when judged, else in ECE).
          const score = judged ? Math.min(...(z as number[])) : Math.min(B.mean - A.mean, B.mean - C.mean, D.mean - C.mean);
          candidates.push({ idx: [a, b, c, d], score, judged, resolved });
        }
  const pick = (list: Candidate[]) => list.reduce((x, y) => (y.score > x.score ? y : x));
  const series = points.map((p) => `${formatSparsity(p.density)}: ${formatStats(p.ece, 4)}`).join(', ');
  if (candidates.length === 0) return { verdict: 'absent', points, witnessBorrows: false, detail: `the means never rise, fall and rise again (${series})` };
  const resolved = candidates.filter((c) => c.resolved);
  const unjudged = candidates.filter((c) => !c.judged);
  const [verdict, best]: [DoubleDescentVerdict, Candidate] =
    resolved.length > 0 ? ['appears', pick(resolved)] : unjudged.length > 0 ? ['unresolved', pick(unjudged)] : ['within noise', pick(candidates)];
  const witness = best.idx.map((i) => points[i]) as unknown as [CurvePoint, CurvePoint, CurvePoint, CurvePoint];
  const [A, B, C, D] = witness;
  const step = (from: CurvePoint, to: CurvePoint) => {
    const z = zScore(spreadOf(from), spreadOf(to));
    const borrowed = [from, to].some((p) => p.ece.std === undefined) && z !== undefined ? ', with the borrowed spread' : '';
    return `${formatSparsity(to.density)} (${formatStats(to.ece, 4)}; ${z === undefined ? 'no spread to judge the change by' : `${z === Infinity ? '∞' : z.toFixed(1)} standard errors${borrowed}`})`;
  };
  const witnessBorrows = borrowedStd !== undefined && witness.some((p) => p.ece.std === undefined);
  const lending = witnessBorrows ? ` (one-seed points judged with a standard deviation of ${borrowedStd.toFixed(4)}, the largest measured on this curve)` : '';
  const detail = `ECE ${formatStats(A.ece, 4)} at ${formatSparsity(A.density)} rises to ${step(A, B)}, falls to ${step(B, C)} and rises to ${step(C, D)}${lending}`;
  return { verdict, points, witness, detail, witnessBorrows, ...(borrowedStd !== undefined ? { borrowedStd } : {}) };
}
