import type { EpochRow } from './epochs';

/**
 * Whether a run reached the over-fitting regime the paper's claims are about, judged from its per-epoch
 * curves by a rule stated with its numbers:
 *
 * - **trained to fit:** the last epoch's training accuracy (the running accuracy over that epoch's
 *   batches) is at least `trainAccuracy` (0.99);
 * - **test NLL rising** and **test ECE rising** after their minimum: the curve is smoothed by a trailing
 *   median over `smoothing` epochs; its last value is at least `minRise` above its lowest value, and that
 *   lowest value lies at least `smoothing` epochs before the end.
 *
 * Why smoothed: while the learning rate is high, single epochs of a small training set swing the test
 * NLL by a factor of two, so a raw minimum is one lucky epoch; a median ignores such an epoch. Why not a
 * slope over the last epochs: under cosine decay the learning rate there is near 0, so every curve is
 * flat whether or not the model over-fitted; the slope is still reported, as context.
 *
 * The regime is reached when all three hold.
 */
export const OVERFIT_RULE = {
  trainAccuracy: 0.99,
  /** Epochs in the trailing median that smooths a curve. */
  smoothing: 5,
  /** The smallest relative rise of the smoothed curve from its minimum to the end that counts as rising. */
  minRise: 0.01,
  /** The window of the reported (not judged) slope: the last fifth of the epochs, at least this many. */
  minWindow: 3,
  windowFraction: 0.2,
} as const;

export interface TrendCheck {
  readonly what: string;
  /** Epochs the value was logged at. */
  readonly epochs: number;
  /** The smoothed curve's minimum and the epoch that ends its window. */
  readonly minimum: number;
  readonly minimumEpoch: number;
  /** The smoothed curve at the last epoch. */
  readonly last: number;
  readonly lastEpoch: number;
  /** (last − minimum) / minimum. */
  readonly rise: number;
  /** The raw (unsmoothed) minimum, for context. */
  readonly rawMinimum: number;
  readonly rawMinimumEpoch: number;
  /** K: the last epochs the context slope is fitted over, and that least-squares slope per epoch. */
  readonly window: number;
  readonly slope: number;
  readonly rising: boolean;
}

export interface OverfitEvidence {
  readonly epochs: number;
  readonly trainAccuracy?: number;
  readonly trainAccuracyReached: boolean;
  /** Undefined when the curve has too few epochs to judge (fewer than twice the smoothing) or is missing. */
  readonly nll?: TrendCheck;
  readonly ece?: TrendCheck;
  readonly reached: boolean;
}

/** The rule in words, for the report. */
export const OVERFIT_RULE_TEXT =
  `the last epoch's training accuracy is at least ${OVERFIT_RULE.trainAccuracy * 100}%, and test NLL and test ECE rise after their minimum: ` +
  `smoothed by a trailing median over ${OVERFIT_RULE.smoothing} epochs, the curve ends at least ${OVERFIT_RULE.minRise * 100}% above its lowest value, ` +
  `and that lowest value lies at least ${OVERFIT_RULE.smoothing} epochs before the end. ` +
  `The median, because while the learning rate is high single epochs swing the test NLL by a factor of two; ` +
  `not a slope over the last epochs, because under cosine decay the learning rate there is near 0 and every curve is flat ` +
  `(that slope, over the last fifth of the epochs, is shown as context)`;

export function trendWindow(epochs: number): number {
  return Math.max(OVERFIT_RULE.minWindow, Math.ceil(epochs * OVERFIT_RULE.windowFraction));
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function leastSquaresSlope(points: readonly { epoch: number; value: number }[]): number {
  const mx = points.reduce((s, p) => s + p.epoch, 0) / points.length;
  const my = points.reduce((s, p) => s + p.value, 0) / points.length;
  return points.reduce((s, p) => s + (p.epoch - mx) * (p.value - my), 0) / points.reduce((s, p) => s + (p.epoch - mx) ** 2, 0);
}

/** The rise-after-minimum check of one curve (points in epoch order); undefined with fewer than twice the smoothing. */
export function risingTrend(what: string, points: readonly { epoch: number; value: number }[]): TrendCheck | undefined {
  const s = OVERFIT_RULE.smoothing;
  if (points.length < 2 * s) return undefined;
  const smoothed = points.slice(s - 1).map((p, i) => ({ epoch: p.epoch, value: median(points.slice(i, i + s).map((q) => q.value)) }));
  const min = smoothed.reduce((a, b) => (b.value < a.value ? b : a));
  const last = smoothed[smoothed.length - 1];
  const rawMin = points.reduce((a, b) => (b.value < a.value ? b : a));
  const window = trendWindow(points.length);
  const rise = min.value > 0 ? (last.value - min.value) / min.value : last.value > min.value ? Infinity : 0;
  const minimumEarlyEnough = smoothed.length - 1 - smoothed.indexOf(min) >= s;
  return {
    what,
    epochs: points.length,
    minimum: min.value,
    minimumEpoch: min.epoch,
    last: last.value,
    lastEpoch: last.epoch,
    rise,
    rawMinimum: rawMin.value,
    rawMinimumEpoch: rawMin.epoch,
    window,
    slope: leastSquaresSlope(points.slice(-window)),
    rising: rise >= OVERFIT_RULE.minRise && minimumEarlyEnough,
  };
}

export function overfitEvidence(rows: readonly EpochRow[]): OverfitEvidence {
  const curve = (field: 'testLoss' | 'testEce15') => rows.flatMap((r) => (r[field] === undefined ? [] : [{ epoch: r.epoch, value: r[field]! }]));
  const trainAccuracy = rows.at(-1)?.trainAccuracy;
  const trainAccuracyReached = trainAccuracy !== undefined && trainAccuracy >= OVERFIT_RULE.trainAccuracy;
  const nll = risingTrend('Test NLL', curve('testLoss'));
  const ece = risingTrend('Test ECE (15 bins)', curve('testEce15'));
  return { epochs: rows.length, trainAccuracy, trainAccuracyReached, nll, ece, reached: trainAccuracyReached && nll?.rising === true && ece?.rising === true };
}
