import { calibrationMetrics, type CalibrationOptions, type CalibrationReport } from './metrics';
import { checkLogitsAndLabels, meanNllUnchecked } from './softmax';

/**
 * Temperature scaling (Guo et al. 2017): one scalar T > 0 that divides every logit, fitted on the
 * validation split by minimising the mean NLL.
 *
 * Why golden-section search on u = ln T: NLL is convex in β = 1/T (a log-sum-exp of functions linear in
 * β minus a linear term), and β = e^(−u) is monotone, so NLL(u) is unimodal on any interval. Golden
 * section needs no derivatives, cannot overshoot, and makes the same evaluations in the same order every
 * time, so the fit is deterministic. The bracket [minTemperature, maxTemperature] bounds the answer:
 * if every validation example is already right with a margin, NLL keeps falling as T → 0, and the fit
 * stops at the lower bound and says so (`atBound`).
 */

export interface TemperatureOptions {
  /** Default 0.01. */
  readonly minTemperature?: number;
  /** Default 100. */
  readonly maxTemperature?: number;
  /** Stop when the bracket on ln T is narrower than this. Default 1e-7. */
  readonly tolerance?: number;
}

export interface TemperatureFit {
  readonly temperature: number;
  /** Mean validation NLL at T = 1 and at the fitted T. */
  readonly nllBefore: number;
  readonly nllAfter: number;
  /** Number of NLL evaluations made. */
  readonly evaluations: number;
  /** Set when the minimum lies at an end of the bracket (within the tolerance). */
  readonly atBound: 'lower' | 'upper' | null;
}

const INVERSE_GOLDEN = (Math.sqrt(5) - 1) / 2;

/** Fits T on logits [n × numClasses] and labels [n]. */
export function fitTemperature(
  logits: Float32Array,
  labels: Int32Array,
  numClasses: number,
  options: TemperatureOptions = {},
): TemperatureFit {
  const minT = options.minTemperature ?? 0.01;
  const maxT = options.maxTemperature ?? 100;
  const tolerance = options.tolerance ?? 1e-7;
  if (!(minT > 0 && maxT > minT && Number.isFinite(maxT))) {
    throw new Error(`fitTemperature: need 0 < minTemperature < maxTemperature < ∞, got ${minT} and ${maxT}`);
  }
  if (!(tolerance > 0)) throw new Error(`fitTemperature: tolerance must be positive, got ${tolerance}`);
  if (labels.length === 0) throw new Error('fitTemperature: no validation examples');
  checkLogitsAndLabels(logits, labels, numClasses, 'fitTemperature');

  const scratch = new Float64Array(numClasses);
  let evaluations = 0;
  const nllAt = (u: number): number => {
    evaluations++;
    return meanNllUnchecked(logits, labels, numClasses, Math.exp(u), scratch);
  };

  const lo = Math.log(minT);
  const hi = Math.log(maxT);
  let a = lo;
  let b = hi;
  let c = b - INVERSE_GOLDEN * (b - a);
  let d = a + INVERSE_GOLDEN * (b - a);
  let fc = nllAt(c);
  let fd = nllAt(d);
  while (b - a > tolerance) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - INVERSE_GOLDEN * (b - a);
      fc = nllAt(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + INVERSE_GOLDEN * (b - a);
      fd = nllAt(d);
    }
  }
  const u = fc < fd ? c : d;
  const nllAfter = Math.min(fc, fd);
  const atBound = u - lo <= 2 * tolerance ? 'lower' : hi - u <= 2 * tolerance ? 'upper' : null;
  return { temperature: Math.exp(u), nllBefore: nllAt(0), nllAfter, evaluations, atBound };
}

export interface TemperatureScaling {
  readonly fit: TemperatureFit;
  /** Metrics of the same logits at T = 1 and at the fitted T. */
  readonly before: CalibrationReport;
  readonly after: CalibrationReport;
}

/** Fits T on validation logits and reports the validation metrics before and after. */
export function temperatureScale(
  logits: Float32Array,
  labels: Int32Array,
  numClasses: number,
  options: TemperatureOptions & CalibrationOptions = {},
): TemperatureScaling {
  const fit = fitTemperature(logits, labels, numClasses, options);
  return {
    fit,
    before: calibrationMetrics(logits, labels, numClasses, { ...options, temperature: 1 }),
    after: calibrationMetrics(logits, labels, numClasses, { ...options, temperature: fit.temperature }),
  };
}
