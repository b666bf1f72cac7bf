import type { EpochRow } from './epochs';

/**
 * Whether a run reached the over-fitting regime the paper's claims are about, judged from its per-epoch
 * curves by a rule stated with its numbers:
 *
 * - **trained to fit:** the last epoch's training accuracy (the running accuracy over that epoch's
 *   batches) is at least `trainAccuracy` (0.99);
 * - **test NLL rising** and **test ECE rising:** over the last K epochs, K = max(3, ⌈E / 5⌉) of E (the last
 *   fifth of training), the least-squares slope of the value against the epoch is positive, and the last
 *   epoch's value is above the minimum over all epochs.
 *
 * The regime is reached when all three hold.
 */
export const OVERFIT_RULE = {
  trainAccuracy: 0.99,
  /** The trend window: the last fifth of the epochs, at least this many. */
  minWindow: 3,
  windowFraction: 0.2,
} as const;

export interface TrendCheck {
  readonly what: string;
  /** Epochs the value was logged at. */
  readonly epochs: number;
  /** K: the last epochs the slope is fitted over. */
  readonly window: number;
  /** Least-squares slope per epoch over the window. */
  readonly slope: number;
  readonly minimum: number;
  readonly minimumEpoch: number;
  readonly last: number;
  readonly lastEpoch: number;
  readonly rising: boolean;
}

export interface OverfitEvidence {
  readonly epochs: number;
  readonly trainAccuracy?: number;
  readonly trainAccuracyReached: boolean;
  /** Undefined when the curve has too few epochs to judge (fewer than the window) or is missing. */
  readonly nll?: TrendCheck;
  readonly ece?: TrendCheck;
  readonly reached: boolean;
}

/** The rule in words, for the report. */
export const OVERFIT_RULE_TEXT =
  `the last epoch's training accuracy is at least ${OVERFIT_RULE.trainAccuracy * 100}%, and test NLL and test ECE are rising: ` +
  `a positive least-squares slope over the last K epochs (K = max(${OVERFIT_RULE.minWindow}, ⌈E/5⌉) of the E epochs logged) and the last epoch's value above the minimum over all epochs`;

export function trendWindow(epochs: number): number {
  return Math.max(OVERFIT_RULE.minWindow, Math.ceil(epochs * OVERFIT_RULE.windowFraction));
}

/** The rising-trend check of one curve (points in epoch order); undefined with fewer points than the window. */
export function risingTrend(what: string, points: readonly { epoch: number; value: number }[]): TrendCheck | undefined {
  const window = trendWindow(points.length);
  if (points.length < window || points.length < 2) return undefined;
  const tail = points.slice(-window);
  const mx = tail.reduce((s, p) => s + p.epoch, 0) / tail.length;
  const my = tail.reduce((s, p) => s + p.value, 0) / tail.length;
  const slope = tail.reduce((s, p) => s + (p.epoch - mx) * (p.value - my), 0) / tail.reduce((s, p) => s + (p.epoch - mx) ** 2, 0);
  const min = points.reduce((a, b) => (b.value < a.value ? b : a));
  const last = points[points.length - 1];
  return { what, epochs: points.length, window, slope, minimum: min.value, minimumEpoch: min.epoch, last: last.value, lastEpoch: last.epoch, rising: slope > 0 && last.value > min.value };
}

export function overfitEvidence(rows: readonly EpochRow[]): OverfitEvidence {
  const curve = (field: 'testLoss' | 'testEce15') => rows.flatMap((r) => (r[field] === undefined ? [] : [{ epoch: r.epoch, value: r[field]! }]));
  const trainAccuracy = rows.at(-1)?.trainAccuracy;
  const trainAccuracyReached = trainAccuracy !== undefined && trainAccuracy >= OVERFIT_RULE.trainAccuracy;
  const nll = risingTrend('Test NLL', curve('testLoss'));
  const ece = risingTrend('Test ECE (15 bins)', curve('testEce15'));
  return { epochs: rows.length, trainAccuracy, trainAccuracyReached, nll, ece, reached: trainAccuracyReached && nll?.rising === true && ece?.rising === true };
}
