import {
  binIndex,
  binTable,
  calibrationGaps,
  checkBinCount,
  equalWidthEdges,
  newBinSums,
  type BinRow,
  type BinSums,
} from './bins';
import { checkLogitsAndLabels, checkRows, rowNll, softmaxRow } from './softmax';

/**
 * Calibration metrics of a classifier on a data split, computed from plain arrays (no tensors):
 * accuracy, NLL, Brier score, ECE and MCE with equal-width bins (15 and 10 by default, each labelled),
 * adaptive (equal-mass) ECE, class-wise ECE and the per-bin tables.
 *
 * Definitions (confidence = max softmax probability, prediction = its argmax, ties to the lowest class):
 * - NLL: mean −ln p_y. Brier: mean Σ_k (p_k − [y = k])², summed over classes (Brier 1950; as in Ovadia
 *   et al. 2019), so it lies in [0, 2].
 * - ECE (Guo et al. 2017): Σ_b (n_b / N)·|acc_b − conf_b| over equal-width bins (edge convention in
 *   bins.ts: bins are (lo, hi], 0 goes in the first bin). MCE: max_b |acc_b − conf_b| over non-empty bins.
 * - Adaptive ECE (Nguyen & O'Connor 2015; Nixon et al. 2019): the same sum over B equal-mass bins: sort
 *   the examples by confidence (ties by arrival order) and give bin b the examples ⌊bN/B⌋ … ⌊(b+1)N/B⌋−1.
 * - Class-wise ECE (Kull et al. 2019): for every class k, bin all N examples by p_k (equal-width bins)
 *   and compare the mean p_k with the frequency of label k in each bin; average over the classes:
 *   (1/K) Σ_k Σ_b (n_bk / N)·|freq_bk − mean p_bk|.
 *
 * All sums are float64 and run in example order, so adding the data in any batching gives bit-identical
 * results to the one-shot functions (which are this accumulator fed one batch). A batch with a bad value
 * (NaN/Inf logit, label out of range) is rejected whole, before anything of it is added.
 */

export interface CalibrationOptions {
  /** Equal-width bin counts; each gives an ECE, MCE and per-bin table. Default [15, 10]. */
  readonly binCounts?: readonly number[];
  /** Equal-mass bins for the adaptive ECE. Default 15. */
  readonly adaptiveBins?: number;
  /** Equal-width bins per class for the class-wise ECE. Default 15. */
  readonly classwiseBins?: number;
  /** Logits are divided by this before the softmax (temperature scaling). Default 1. */
  readonly temperature?: number;
}

export interface EqualWidthCalibration {
  /** Short key for logs: 'ece15'. */
  readonly key: string;
  /** 'ECE (15 equal-width bins)'. */
  readonly label: string;
  readonly bins: number;
  readonly ece: number;
  readonly mce: number;
  readonly table: readonly BinRow[];
}

export interface AdaptiveCalibration {
  /** 'adaptiveEce15'. */
  readonly key: string;
  readonly label: string;
  readonly bins: number;
  readonly ece: number;
  /** lower/upper are the smallest and largest confidence in each bin (NaN when the bin is empty). */
  readonly table: readonly BinRow[];
}

export interface ClasswiseCalibration {
  /** 'classwiseEce15'. */
  readonly key: string;
  readonly label: string;
  readonly bins: number;
  readonly ece: number;
  /** The class-wise ECE term of every class, Σ_b (n_bk / N)·|freq_bk − mean p_bk|. */
  readonly perClass: readonly number[];
}

export interface CalibrationReport {
  readonly count: number;
  readonly numClasses: number;
  readonly temperature: number;
  readonly accuracy: number;
  readonly nll: number;
  readonly brier: number;
  /** One entry per `binCounts` value, in that order. */
  readonly equalWidth: readonly EqualWidthCalibration[];
  readonly adaptive: AdaptiveCalibration;
  readonly classwise: ClasswiseCalibration;
}

const DEFAULT_BIN_COUNTS: readonly number[] = [15, 10];
/** How far a row of given probabilities may sum from 1 (float32 softmax outputs sum within ~1e-6). */
const PROBABILITY_SUM_TOLERANCE = 1e-3;

/** Streaming computation: add batches in order, then `finalise()`. */
export class CalibrationAccumulator {
  readonly numClasses: number;
  readonly temperature: number;
  private readonly binCounts: readonly number[];
  private readonly adaptiveBins: number;
  private readonly classwiseBins: number;

  private count = 0;
  private batches = 0;
  private correctCount = 0;
  private nllSum = 0;
  private brierSum = 0;
  private readonly equalWidthSums: BinSums[];
  /** Per class, bins of p_k: count, Σ p_k and Σ [y = k]. */
  private readonly classwiseSums: BinSums[];
  /** Every example's confidence and correctness, for the equal-mass bins (which need a sort). */
  private confidences = new Float64Array(1024);
  private correctness = new Uint8Array(1024);
  private readonly probs: Float64Array;

  constructor(numClasses: number, options: CalibrationOptions = {}) {
    if (!(Number.isInteger(numClasses) && numClasses >= 2)) {
      throw new Error(`calibration metrics: numClasses must be an integer ≥ 2, got ${numClasses}`);
    }
    this.numClasses = numClasses;
    this.binCounts = options.binCounts ?? DEFAULT_BIN_COUNTS;
    if (this.binCounts.length === 0) throw new Error('calibration metrics: binCounts must not be empty');
    for (const b of this.binCounts) checkBinCount(b, 'calibration metrics binCounts');
    this.adaptiveBins = options.adaptiveBins ?? 15;
    checkBinCount(this.adaptiveBins, 'calibration metrics adaptiveBins');
    this.classwiseBins = options.classwiseBins ?? 15;
    checkBinCount(this.classwiseBins, 'calibration metrics classwiseBins');
    this.temperature = options.temperature ?? 1;
    if (!(this.temperature > 0 && Number.isFinite(this.temperature))) {
      throw new Error(`calibration metrics: temperature must be a positive finite number, got ${this.temperature}`);
    }
    this.equalWidthSums = this.binCounts.map(newBinSums);
    this.classwiseSums = Array.from({ length: numClasses }, () => newBinSums(this.classwiseBins));
    this.probs = new Float64Array(numClasses);
  }

  /**
   * Adds a batch of logits [n × numClasses] (row-major) with their labels. `name` identifies the batch
   * in error messages (default "batch <k>", counting the batches added so far from 0).
   */
  addLogits(logits: Float32Array, labels: Int32Array, name?: string): void {
    checkLogitsAndLabels(logits, labels, this.numClasses, this.batchName(name));
    this.batches++;
    for (let i = 0; i < labels.length; i++) {
      const row = softmaxRow(logits, i, this.numClasses, this.temperature, this.probs);
      this.addExample(row.argmax, labels[i], rowNll(row, logits[i * this.numClasses + labels[i]] / this.temperature));
    }
  }

  /**
   * Adds a batch of probabilities [n × numClasses]: each finite, in [0, 1], rows summing to 1 within
   * 1e-3. A true class of probability 0 gives NLL = Infinity; pass logits where you have them.
   */
  addProbabilities(probabilities: Float32Array, labels: Int32Array, name?: string): void {
    const batch = this.batchName(name);
    if (this.temperature !== 1) {
      throw new Error(`${batch}: temperature ${this.temperature} applies to logits only; probabilities given`);
    }
    const k = this.numClasses;
    checkRows(probabilities, labels, k, batch, 'probability', (p) => p >= 0 && p <= 1, 'expected a value in [0, 1]');
    for (let i = 0; i < labels.length; i++) {
      let sum = 0;
      for (let c = 0; c < k; c++) sum += probabilities[i * k + c];
      if (Math.abs(sum - 1) > PROBABILITY_SUM_TOLERANCE) {
        throw new Error(`${batch}: probabilities of example ${i} sum to ${sum}, not 1`);
      }
    }
    this.batches++;
    for (let i = 0; i < labels.length; i++) {
      let argmax = 0;
      for (let c = 0; c < k; c++) {
        this.probs[c] = probabilities[i * k + c];
        if (this.probs[c] > this.probs[argmax]) argmax = c;
      }
      this.addExample(argmax, labels[i], -Math.log(this.probs[labels[i]]));
    }
  }

  /** Number of examples added so far. */
  get examples(): number {
    return this.count;
  }

  finalise(): CalibrationReport {
    const n = this.count;
    if (n === 0) throw new Error('calibration metrics: no examples were added');
    const equalWidth = this.binCounts.map((bins, j): EqualWidthCalibration => {
      const sums = this.equalWidthSums[j];
      return {
        key: `ece${bins}`,
        label: `ECE (${bins} equal-width bins)`,
        bins,
        ...calibrationGaps(sums, n),
        table: binTable(sums, equalWidthEdges(bins)),
      };
    });
    const perClass = this.classwiseSums.map((sums) => calibrationGaps(sums, n).ece);
    return {
      count: n,
      numClasses: this.numClasses,
      temperature: this.temperature,
      accuracy: this.correctCount / n,
      nll: this.nllSum / n,
      brier: this.brierSum / n,
      equalWidth,
      adaptive: this.adaptive(),
      classwise: {
        key: `classwiseEce${this.classwiseBins}`,
        label: `Class-wise ECE (${this.classwiseBins} equal-width bins per class)`,
        bins: this.classwiseBins,
        ece: perClass.reduce((a, b) => a + b, 0) / this.numClasses,
        perClass,
      },
    };
  }

  private batchName(name: string | undefined): string {
    return `calibration metrics, ${name ?? `batch ${this.batches}`}`;
  }

  /** Folds one example in; `this.probs` holds its class probabilities. */
  private addExample(prediction: number, label: number, nll: number): void {
    const probs = this.probs;
    const confidence = probs[prediction];
    const correct = prediction === label ? 1 : 0;
    this.correctCount += correct;
    this.nllSum += nll;
    let brier = 0;
    for (let c = 0; c < this.numClasses; c++) {
      const target = c === label ? 1 : 0;
      brier += (probs[c] - target) ** 2;
      const sums = this.classwiseSums[c];
      const b = binIndex(probs[c], this.classwiseBins);
      sums.count[b]++;
      sums.confidence[b] += probs[c];
      sums.correct[b] += target;
    }
    this.brierSum += brier;
    for (let j = 0; j < this.binCounts.length; j++) {
      const sums = this.equalWidthSums[j];
      const b = binIndex(confidence, this.binCounts[j]);
      sums.count[b]++;
      sums.confidence[b] += confidence;
      sums.correct[b] += correct;
    }
    if (this.count === this.confidences.length) {
      const grownConfidences = new Float64Array(this.count * 2);
      grownConfidences.set(this.confidences);
      this.confidences = grownConfidences;
      const grownCorrectness = new Uint8Array(this.count * 2);
      grownCorrectness.set(this.correctness);
      this.correctness = grownCorrectness;
    }
    this.confidences[this.count] = confidence;
    this.correctness[this.count] = correct;
    this.count++;
  }

  private adaptive(): AdaptiveCalibration {
    const n = this.count;
    const bins = this.adaptiveBins;
    const conf = this.confidences;
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => conf[a] - conf[b] || a - b);
    const sums = newBinSums(bins);
    const lower = new Float64Array(bins).fill(NaN);
    const upper = new Float64Array(bins).fill(NaN);
    for (let b = 0; b < bins; b++) {
      const start = Math.floor((b * n) / bins);
      const end = Math.floor(((b + 1) * n) / bins);
      for (let r = start; r < end; r++) {
        const i = order[r];
        sums.count[b]++;
        sums.confidence[b] += conf[i];
        sums.correct[b] += this.correctness[i];
      }
      if (end > start) {
        lower[b] = conf[order[start]];
        upper[b] = conf[order[end - 1]];
      }
    }
    return {
      key: `adaptiveEce${bins}`,
      label: `Adaptive ECE (${bins} equal-mass bins)`,
      bins,
      ece: calibrationGaps(sums, n).ece,
      table: binTable(sums, (b) => [lower[b], upper[b]]),
    };
  }
}

/** One-shot metrics of logits [n × numClasses] and labels [n]; equal to streaming them in any batches. */
export function calibrationMetrics(
  logits: Float32Array,
  labels: Int32Array,
  numClasses: number,
  options?: CalibrationOptions,
): CalibrationReport {
  return oneShot(numClasses, options, (acc) => acc.addLogits(logits, labels, 'all examples'));
}

/** One-shot metrics of probabilities [n × numClasses] (see CalibrationAccumulator.addProbabilities). */
export function calibrationMetricsFromProbabilities(
  probabilities: Float32Array,
  labels: Int32Array,
  numClasses: number,
  options?: CalibrationOptions,
): CalibrationReport {
  return oneShot(numClasses, options, (acc) => acc.addProbabilities(probabilities, labels, 'all examples'));
}

/** The one-shot functions are the accumulator fed a single batch, so they agree with streaming exactly. */
function oneShot(numClasses: number, options: CalibrationOptions | undefined, feed: (acc: CalibrationAccumulator) => void): CalibrationReport {
  const acc = new CalibrationAccumulator(numClasses, options);
  feed(acc);
  return acc.finalise();
}

/**
 * The scalar metrics as one flat record for logs and dashboards: accuracy, nll, brier, ece<B> and
 * mce<B> for every equal-width bin count, adaptiveEce<B>, classwiseEce<B>, count and temperature.
 */
export function summariseCalibration(report: CalibrationReport): Record<string, number> {
  const flat: Record<string, number> = {
    count: report.count,
    temperature: report.temperature,
    accuracy: report.accuracy,
    nll: report.nll,
    brier: report.brier,
  };
  for (const e of report.equalWidth) {
    flat[e.key] = e.ece;
    flat[`mce${e.bins}`] = e.mce;
  }
  flat[report.adaptive.key] = report.adaptive.ece;
  flat[report.classwise.key] = report.classwise.ece;
  return flat;
}
