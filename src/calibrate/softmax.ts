/**
 * Numerically stable softmax of one row of logits, in float64, and the input checks. The calibration
 * metrics and the temperature fit both read logits through these functions so that they agree on every
 * number.
 */

export interface SoftmaxRow {
  /** Index of the largest logit; ties go to the lowest class index. */
  readonly argmax: number;
  /** The largest scaled logit, max_k z_k / T. */
  readonly max: number;
  /**
   * log Σ_k exp(z_k / T − max) = log1p(Σ_{k ≠ argmax} exp(z_k / T − max)). Kept apart from `max` so that
   * NLL = this + (max − z_y / T) keeps full relative precision when the prediction is right and
   * confident (then the second term is exactly 0 and this one is tiny).
   */
  readonly logNormaliser: number;
}

/** −ln p_y of a row, with `scaledLabelLogit` = z_y / T. */
export function rowNll(row: SoftmaxRow, scaledLabelLogit: number): number {
  return row.logNormaliser + (row.max - scaledLabelLogit);
}

/**
 * Reads row `row` of `logits` ([n × classes], row-major), divides by `temperature`, writes the
 * probabilities into `probs` (length ≥ classes) and returns the argmax and the log-normaliser. The caller has
 * checked the logits with `checkLogitsAndLabels`.
 */
export function softmaxRow(
  logits: Float32Array,
  row: number,
  classes: number,
  temperature: number,
  probs: Float64Array,
): SoftmaxRow {
  const base = row * classes;
  let argmax = 0;
  let max = -Infinity;
  for (let k = 0; k < classes; k++) {
    const scaled = logits[base + k] / temperature;
    probs[k] = scaled;
    if (scaled > max) {
      max = scaled;
      argmax = k;
    }
  }
  let rest = 0;
  for (let k = 0; k < classes; k++) {
    const e = Math.exp(probs[k] - max);
    probs[k] = e;
    if (k !== argmax) rest += e;
  }
  const sum = 1 + rest;
  for (let k = 0; k < classes; k++) probs[k] /= sum;
  return { argmax, max, logNormaliser: Math.log1p(rest) };
}

/**
 * Throws unless `values` holds labels.length × classes entries, every label is an integer in
 * [0, classes) and every value passes `valueOk`. Errors name `batch`, the example and the class.
 */
export function checkRows(
  values: Float32Array,
  labels: Int32Array,
  classes: number,
  batch: string,
  what: string,
  valueOk: (v: number) => boolean,
  expected: string,
): void {
  if (values.length !== labels.length * classes) {
    throw new Error(`${batch}: ${values.length} ${what}s for ${labels.length} labels; expected labels × ${classes} classes`);
  }
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (!(label >= 0 && label < classes)) {
      throw new Error(`${batch}: label of example ${i} is ${label}; expected an integer in [0, ${classes})`);
    }
    for (let k = 0; k < classes; k++) {
      const v = values[i * classes + k];
      if (!valueOk(v)) throw new Error(`${batch}: ${what} of example ${i}, class ${k} is ${v}; ${expected}`);
    }
  }
}

/** Logits must be finite: NaN and ±Infinity are rejected. */
export function checkLogitsAndLabels(logits: Float32Array, labels: Int32Array, classes: number, batch: string): void {
  checkRows(logits, labels, classes, batch, 'logit', Number.isFinite, 'logits must be finite (NaN/Inf rejected)');
}

/** Mean negative log-likelihood of `labels` under softmax(logits / temperature). */
export function meanNll(logits: Float32Array, labels: Int32Array, classes: number, temperature: number): number {
  if (labels.length === 0) throw new Error('meanNll: no examples');
  checkLogitsAndLabels(logits, labels, classes, 'meanNll');
  return meanNllUnchecked(logits, labels, classes, temperature, new Float64Array(classes));
}

/** meanNll for inputs already checked; `probs` is scratch space of length ≥ classes. */
export function meanNllUnchecked(
  logits: Float32Array,
  labels: Int32Array,
  classes: number,
  temperature: number,
  probs: Float64Array,
): number {
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = softmaxRow(logits, i, classes, temperature, probs);
    total += rowNll(row, logits[i * classes + labels[i]] / temperature);
  }
  return total / labels.length;
}
