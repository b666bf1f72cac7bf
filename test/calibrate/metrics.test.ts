import t, { type Test } from 'tap';
import { binEdge, binIndex } from '../../src/calibrate/bins';
import {
  CalibrationAccumulator,
  calibrationMetrics,
  calibrationMetricsFromProbabilities,
  summariseCalibration,
} from '../../src/calibrate/metrics';
import { Rng } from '../../src/util/rng';

const close = (t: Test, actual: number, expected: number, tol: number, msg: string) =>
  t.ok(Math.abs(actual - expected) <= tol, `${msg}: ${actual} ≈ ${expected} (±${tol})`);

/** Rows of probabilities and labels as the flat arrays the metrics take. */
function rows(probs: number[][], labels: number[]): [Float32Array, Int32Array] {
  return [Float32Array.from(probs.flat()), Int32Array.from(labels)];
}

/** The largest double below x (x > 0). */
function nextDown(x: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  view.setBigUint64(0, view.getBigUint64(0) - 1n);
  return view.getFloat64(0);
}

/** The smallest double above x (x > 0). */
function nextUp(x: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  view.setBigUint64(0, view.getBigUint64(0) + 1n);
  return view.getFloat64(0);
}

function randomLogits(rng: Rng, n: number, classes: number, scale: number): [Float32Array, Int32Array] {
  const logits = new Float32Array(n * classes);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = rng.nextInt(classes);
    for (let k = 0; k < classes; k++) logits[i * classes + k] = scale * rng.nextNormal() + (k === labels[i] ? 1.5 : 0);
  }
  return [logits, labels];
}

t.test('perfectly calibrated predictions: ECE, MCE, class-wise ECE 0; accuracy, NLL, Brier by hand', async (t) => {
  // 5 examples at confidence 0.8 with 4 right, 5 at 0.6 with 3 right.
  const probs = [...Array(5).fill([0.8, 0.2]), ...Array(5).fill([0.6, 0.4])];
  const labels = [0, 0, 0, 0, 1, 0, 0, 0, 1, 1];
  const [p, y] = rows(probs, labels);
  const expectedNll = -(4 * Math.log(0.8) + Math.log(0.2) + 3 * Math.log(0.6) + 2 * Math.log(0.4)) / 10;
  // Brier per example: [.8,.2] right .08, wrong 1.28; [.6,.4] right .32, wrong .72.
  const expectedBrier = (4 * 0.08 + 1.28 + 3 * 0.32 + 2 * 0.72) / 10;
  const logits = Float32Array.from(probs.flat().map(Math.log));
  for (const [name, r] of [
    ['probabilities', calibrationMetricsFromProbabilities(p, y, 2, { adaptiveBins: 2 })],
    ['logits', calibrationMetrics(logits, y, 2, { adaptiveBins: 2 })],
  ] as const) {
    t.equal(r.count, 10);
    t.equal(r.accuracy, 0.7, `${name} accuracy`);
    close(t, r.nll, expectedNll, 1e-6, `${name} NLL`);
    close(t, r.brier, expectedBrier, 1e-6, `${name} Brier`);
    t.same(r.equalWidth.map((e) => e.key), ['ece15', 'ece10'], 'both bin counts reported, 15 first');
    t.same(r.equalWidth.map((e) => e.label), ['ECE (15 equal-width bins)', 'ECE (10 equal-width bins)']);
    for (const e of r.equalWidth) {
      close(t, e.ece, 0, 1e-6, `${name} ${e.key}`);
      close(t, e.mce, 0, 1e-6, `${name} MCE ${e.bins}`);
    }
    close(t, r.classwise.ece, 0, 1e-6, `${name} class-wise ECE`);
    close(t, r.adaptive.ece, 0, 1e-6, `${name} adaptive ECE, 2 equal-mass bins of 5`);
  }
  // With 15 equal-mass bins each example is alone in its bin: Σ|correct − conf| / N = (4·.2 + .8 + 3·.4 + 2·.6)/10.
  close(t, calibrationMetricsFromProbabilities(p, y, 2).adaptive.ece, 0.4, 1e-6, 'adaptive ECE, 15 bins for 10 examples');
});

t.test('all confident and wrong: ECE = MCE = confidence; confidence 1 goes in the last bin', async (t) => {
  const n = 6;
  const logits = Float32Array.from(Array(n).fill([1000, 0]).flat());
  const labels = new Int32Array(n).fill(1);
  const r = calibrationMetrics(logits, labels, 2);
  t.equal(r.accuracy, 0);
  t.equal(r.nll, 1000, 'NLL = 1000 exactly: log-sum-exp of [1000, 0] is 1000 in float64');
  t.equal(r.brier, 2, 'Brier of a certain wrong answer is 1 + 1');
  for (const e of r.equalWidth) {
    t.equal(e.ece, 1, `${e.key} = 1`);
    t.equal(e.mce, 1);
    const last = e.table[e.bins - 1];
    t.same(last, { lower: binEdge(e.bins - 1, e.bins), upper: 1, count: n, meanConfidence: 1, accuracy: 0 });
    t.ok(e.table.slice(0, -1).every((row) => row.count === 0 && row.meanConfidence === null && row.accuracy === null));
  }
  t.equal(r.adaptive.ece, 1);
  t.equal(r.classwise.ece, 1, 'class 0: p=1, never the label; class 1: p=0, always the label');

  const [p, y] = rows(Array(4).fill([0.9, 0.1]), [1, 1, 1, 1]);
  const r09 = calibrationMetricsFromProbabilities(p, y, 2, { binCounts: [10] });
  close(t, r09.equalWidth[0].ece, 0.9, 1e-7, 'confidence 0.9, all wrong: ECE 0.9');
  t.equal(r09.equalWidth[0].table[8].count, 4, '0.9 in float32 (0.89999998) sits just below the edge 0.9');
  t.equal(r09.equalWidth[0].table[9].accuracy, null);
});

t.test('bin edges (lo, hi]: 0 in the first bin, 1 in the last, an inner edge closes its bin', async (t) => {
  for (const bins of [1, 3, 7, 10, 15, 100]) {
    t.equal(binIndex(0, bins), 0);
    t.equal(binIndex(Number.MIN_VALUE, bins), 0);
    t.equal(binIndex(1, bins), bins - 1);
    t.equal(binIndex(nextDown(1), bins), bins - 1);
    for (let b = 1; b < bins; b++) {
      const edge = binEdge(b, bins);
      if (binIndex(edge, bins) !== b - 1) t.fail(`edge ${b}/${bins} = ${edge} should close bin ${b - 1}`);
      if (binIndex(nextUp(edge), bins) !== b) t.fail(`just above edge ${b}/${bins} should be in bin ${b}`);
    }
  }
  t.throws(() => binIndex(1.0000001, 10), /confidence must be in \[0, 1\], got 1.0000001/);
  t.throws(() => binIndex(NaN, 10), /got NaN/);

  // Exact float32 confidences on the edges of 4 bins: 0.5 closes bin 1, 0.75 closes bin 2, 1 is in bin 3.
  const [p, y] = rows([[0.5, 0.5], [0.75, 0.25], [0.25, 0.75], [1, 0], [0, 1]], [0, 0, 0, 0, 0]);
  const r = calibrationMetricsFromProbabilities(p, y, 2, { binCounts: [4] });
  const table = r.equalWidth[0].table;
  t.same(table.map((row) => [row.lower, row.upper, row.count]), [[0, 0.25, 0], [0.25, 0.5, 1], [0.5, 0.75, 2], [0.75, 1, 2]]);
  t.same(table.map((row) => row.meanConfidence), [null, 0.5, 0.75, 1], 'empty bins have null means');
  t.same(table.map((row) => row.accuracy), [null, 1, 1 / 2, 1 / 2]);
  // ECE: bin 1 |1 − 0.5|·1, bin 2 |1 − 1.5|, bin 3 |1 − 2| → (0.5 + 0.5 + 1)/5; MCE max(0.5, 0.25, 0.5).
  t.equal(r.equalWidth[0].ece, 0.4);
  t.equal(r.equalWidth[0].mce, 0.5);
});

t.test('class-wise ECE by hand', async (t) => {
  const [p, y] = rows(
    [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]],
    [0, 1, 1, 0],
  );
  const r = calibrationMetricsFromProbabilities(p, y, 3, { classwiseBins: 2 });
  // Bins [0, .5) and [.5, 1]. Class 0: high {.7,.6} labels {1,0} → |1−1.3|; low {.2,.1} labels {0,1} → |1−.3|.
  // Class 1: high {.5} label 1 → .5; low {.2,.3,.1} one label → .4. Class 2: high {.8} → .8; low Σ.5 → .5.
  const perClass = [(0.3 + 0.7) / 4, (0.5 + 0.4) / 4, (0.8 + 0.5) / 4];
  perClass.forEach((v, k) => close(t, r.classwise.perClass[k], v, 1e-6, `class ${k}`));
  close(t, r.classwise.ece, 0.8 / 3, 1e-6, 'mean over classes');
  t.equal(r.classwise.key, 'classwiseEce2');
});

t.test('adaptive (equal-mass) ECE by hand', async (t) => {
  // Confidences (label 0 = right, 1 = wrong); sorted: .55W .6C | .65C .85W | .9C .95C.
  const conf = [0.9, 0.55, 0.65, 0.95, 0.6, 0.85];
  const labels = [0, 1, 0, 0, 0, 1];
  const [p, y] = rows(conf.map((c) => [c, 1 - c]), labels);
  const r = calibrationMetricsFromProbabilities(p, y, 2, { adaptiveBins: 3 });
  // |1 − 1.15| + |1 − 1.5| + |2 − 1.85| over 6.
  close(t, r.adaptive.ece, (0.15 + 0.5 + 0.15) / 6, 1e-6, 'adaptive ECE');
  t.same(r.adaptive.table.map((row) => row.count), [2, 2, 2]);
  close(t, r.adaptive.table[1].lower, 0.65, 1e-7, 'bin 1 starts at its smallest confidence');
  close(t, r.adaptive.table[1].upper, 0.85, 1e-7, 'and ends at its largest');
  t.same(r.adaptive.table.map((row) => row.accuracy), [0.5, 0.5, 1]);

  // 7 examples in 3 bins: ⌊7/3⌋ = 2, ⌊14/3⌋ = 4 → sizes 2, 2, 3; ties keep arrival order.
  const [p7, y7] = rows(Array(7).fill([0.7, 0.3]), [0, 0, 1, 1, 1, 0, 0]);
  const r7 = calibrationMetricsFromProbabilities(p7, y7, 2, { adaptiveBins: 3 });
  t.same(r7.adaptive.table.map((row) => row.count), [2, 2, 3]);
  t.same(r7.adaptive.table.map((row) => row.accuracy), [1, 0, 2 / 3]);
  // More bins than examples: the empty ones report NaN edges and null means.
  const r2 = calibrationMetricsFromProbabilities(p7.subarray(0, 4), y7.subarray(0, 2), 2, { adaptiveBins: 3 });
  t.same(r2.adaptive.table.map((row) => row.count), [0, 1, 1]);
  t.ok(Number.isNaN(r2.adaptive.table[0].lower));
  t.equal(r2.adaptive.table[0].accuracy, null);
});

t.test('streaming in any batching equals one-shot exactly; ECE equals a naive computation', async (t) => {
  const rng = new Rng(11);
  const classes = 10;
  const [logits, labels] = randomLogits(rng, 1000, classes, 2);
  const options = { binCounts: [15, 10, 4], adaptiveBins: 12, classwiseBins: 8 };
  const oneShot = calibrationMetrics(logits, labels, classes, options);
  for (const split of [[1000], [1, 999], [0, 7, 128, 128, 0, 737], Array(100).fill(10)]) {
    const acc = new CalibrationAccumulator(classes, options);
    let start = 0;
    for (const size of split) {
      acc.addLogits(logits.subarray(start * classes, (start + size) * classes), labels.subarray(start, start + size));
      start += size;
    }
    t.equal(acc.examples, 1000);
    t.same(acc.finalise(), oneShot, `batches ${split.length}: bit-identical report`);
  }
  // Naive ECE: per-bin means, then the weighted absolute gap.
  const bins = 15;
  const cnt = new Array(bins).fill(0), sumConf = new Array(bins).fill(0), sumAcc = new Array(bins).fill(0);
  for (let i = 0; i < 1000; i++) {
    const row = Array.from(logits.subarray(i * classes, (i + 1) * classes));
    const max = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - max), 0);
    const pred = row.indexOf(max);
    const b = Math.min(bins - 1, Math.floor((1 / z) * bins));
    cnt[b]++;
    sumConf[b] += 1 / z;
    sumAcc[b] += pred === labels[i] ? 1 : 0;
  }
  const naive = cnt.reduce((s, n, b) => (n ? s + (n / 1000) * Math.abs(sumAcc[b] / n - sumConf[b] / n) : s), 0);
  close(t, oneShot.equalWidth[0].ece, naive, 1e-12, 'ECE15 matches the naive formula');
  t.ok(oneShot.equalWidth[0].ece > 0.01, 'random logits are miscalibrated');
  const flat = summariseCalibration(oneShot);
  t.same(Object.keys(flat).sort(), ['accuracy', 'adaptiveEce12', 'brier', 'classwiseEce8', 'count', 'ece10', 'ece15', 'ece4', 'mce10', 'mce15', 'mce4', 'nll', 'temperature'].sort());
  t.equal(flat.ece10, oneShot.equalWidth[1].ece);
});

t.test('temperature option divides the logits before the softmax', async (t) => {
  const [logits, labels] = randomLogits(new Rng(3), 200, 5, 3);
  const halved = logits.map((v) => v / 2); // exact in float32
  t.same(calibrationMetrics(logits, labels, 5, { temperature: 2 }), { ...calibrationMetrics(halved, labels, 5), temperature: 2 });
  t.throws(() => calibrationMetrics(logits, labels, 5, { temperature: 0 }), /temperature must be a positive/);
});

t.test('NaN, Inf and bad labels are rejected with the batch and position; the batch is not half-added', async (t) => {
  const acc = new CalibrationAccumulator(3);
  acc.addLogits(new Float32Array([1, 2, 3, 0, 0, 0]), Int32Array.from([2, 0]));
  const bad = new Float32Array(12);
  bad[3 * 3 + 1] = NaN;
  t.throws(() => acc.addLogits(bad, new Int32Array(4)), /batch 1: logit of example 3, class 1 is NaN; logits must be finite/);
  bad[3 * 3 + 1] = 0;
  bad[2] = -Infinity;
  t.throws(() => acc.addLogits(bad, new Int32Array(4), 'validation epoch 0 index 7'), /validation epoch 0 index 7: logit of example 0, class 2 is -Infinity/);
  bad[2] = Infinity;
  t.throws(() => calibrationMetrics(bad, new Int32Array(4), 3), /all examples: logit of example 0, class 2 is Infinity/);
  t.throws(() => acc.addLogits(new Float32Array(6), Int32Array.from([0, 3])), /label of example 1 is 3; expected an integer in \[0, 3\)/);
  t.throws(() => acc.addLogits(new Float32Array(5), Int32Array.from([0, 1])), /5 logits for 2 labels/);
  t.equal(acc.examples, 2, 'rejected batches added nothing');
  t.throws(() => new CalibrationAccumulator(3).finalise(), /no examples/);
  t.throws(() => calibrationMetricsFromProbabilities(Float32Array.from([0.5, 0.6]), Int32Array.from([0]), 2), /example 0 sum to 1.1/);
  t.throws(() => calibrationMetricsFromProbabilities(Float32Array.from([1.5, -0.5]), Int32Array.from([0]), 2), /probability of example 0, class 0 is 1.5/);
  t.throws(() => new CalibrationAccumulator(3, { binCounts: [0] }), /bin count must be a positive integer, got 0/);
});
