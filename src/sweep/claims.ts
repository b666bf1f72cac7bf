import { formatSparsity, formatStats, type ComparisonGroup, type MetricStats } from './comparison';

/**
 * The paper's two claims, checked on a sweep's numbers (headline stage: no temperature scaling):
 *
 * 1. RigL's ECE is above the dense model's (at each swept sparsity);
 * 2. CigL's ECE is below RigL's at the same sparsity, with accuracy no worse (mean accuracy ≥ RigL's).
 *
 * Verdicts compare means over seeds, as the paper does; each check also says whether the difference
 * exceeds two standard errors of the difference of the means (a rough guide to what the seeds resolve).
 */
export type Verdict = 'holds' | 'holds partly' | 'does not hold' | 'cannot be tested';

export interface ClaimCheck {
  readonly density: number;
  readonly holds: boolean;
  /** One sentence with the numbers. */
  readonly detail: string;
}

export interface ClaimVerdict {
  readonly claim: 1 | 2;
  /** ECE bin count the check used. */
  readonly bins: string;
  readonly verdict: Verdict;
  readonly checks: readonly ClaimCheck[];
  /** The plain statement for the report. */
  readonly statement: string;
}

export const CLAIMS = {
  1: "RigL's ECE is above the dense model's",
  2: "CigL's ECE is below RigL's at the same sparsity, with accuracy no worse",
} as const;

/** Difference a − b with its standard error, when both sides have a spread. */
export function difference(a: MetricStats, b: MetricStats): { delta: number; se?: number } {
  const delta = a.mean - b.mean;
  if (a.std === undefined || b.std === undefined) return { delta };
  return { delta, se: Math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n) };
}

/** "Δ = +0.0150, more than two standard errors (0.0028)", or that one seed gives no spread. */
export function describeDifference(a: MetricStats, b: MetricStats, digits: number, scale = 1, unit = ''): string {
  const { delta, se } = difference(a, b);
  const sign = delta >= 0 ? '+' : '−';
  const text = `Δ = ${sign}${Math.abs(delta * scale).toFixed(digits)}${unit}`;
  if (se === undefined) return `${text}, one seed: no spread to judge it by`;
  return `${text}, ${Math.abs(delta) > 2 * se ? 'more' : 'less'} than two standard errors (${(2 * se * scale).toFixed(digits)})`;
}

function find(groups: readonly ComparisonGroup[], label: string, density?: number): ComparisonGroup | undefined {
  return groups.find((g) => g.label === label && (density === undefined || g.density === density));
}

export function checkClaims(groups: readonly ComparisonGroup[], bins: string): ClaimVerdict[] {
  const sparse = (label: string) => groups.filter((g) => g.label === label && g.density < 1);
  const dense = find(groups, 'dense', 1);
  const claim1: ClaimCheck[] = [];
  if (dense?.headline.ece[bins]) {
    for (const rigl of sparse('rigl')) {
      const r = rigl.headline.ece[bins];
      const d = dense.headline.ece[bins];
      if (!r) continue;
      claim1.push({
        density: rigl.density,
        holds: r.mean > d.mean,
        detail: `at ${formatSparsity(rigl.density)}: RigL ${formatStats(r, 4)} vs dense ${formatStats(d, 4)} (${describeDifference(r, d, 4)})`,
      });
    }
  }
  const claim2: ClaimCheck[] = [];
  for (const cigl of sparse('cigl')) {
    const rigl = find(groups, 'rigl', cigl.density);
    const c = cigl.headline.ece[bins];
    const r = rigl?.headline.ece[bins];
    if (!rigl || !c || !r) continue;
    const lower = c.mean < r.mean;
    const accurate = cigl.headline.accuracy.mean >= rigl.headline.accuracy.mean;
    const ca = cigl.headline.accuracy;
    const ra = rigl.headline.accuracy;
    claim2.push({
      density: cigl.density,
      holds: lower && accurate,
      detail:
        `at ${formatSparsity(cigl.density)}: ECE CigL ${formatStats(c, 4)} vs RigL ${formatStats(r, 4)} (${describeDifference(c, r, 4)}), ` +
        `${lower ? 'lower' : 'not lower'}; accuracy CigL ${formatStats(ca, 2, 100)}% vs RigL ${formatStats(ra, 2, 100)}% ` +
        `(${describeDifference(ca, ra, 2, 100, ' points')}), ${accurate ? 'no worse' : 'worse'}`,
    });
  }
  return [verdict(1, bins, claim1, dense ? 'the sweep has no RigL run with this ECE' : 'the sweep has no dense run'), verdict(2, bins, claim2, 'the sweep has no RigL and CigL runs at a common sparsity')];
}

function verdict(claim: 1 | 2, bins: string, checks: ClaimCheck[], untestable: string): ClaimVerdict {
  const held = checks.filter((c) => c.holds).map((c) => formatSparsity(c.density));
  const failed = checks.filter((c) => !c.holds).map((c) => formatSparsity(c.density));
  const v: Verdict = checks.length === 0 ? 'cannot be tested' : failed.length === 0 ? 'holds' : held.length === 0 ? 'does not hold' : 'holds partly';
  const what = `Claim (${claim}), ${CLAIMS[claim]} (ECE with ${bins} bins)`;
  const statement =
    v === 'cannot be tested'
      ? `${what}: cannot be tested here: ${untestable}.`
      : v === 'holds'
        ? `${what}: **holds** at every sparsity tested (${held.join(', ')}).`
        : v === 'does not hold'
          ? `${what}: **does not hold** at any sparsity tested (${failed.join(', ')}).`
          : `${what}: **holds only partly**: at ${held.join(', ')}, not at ${failed.join(', ')}.`;
  return { claim, bins, verdict: v, checks, statement };
}
