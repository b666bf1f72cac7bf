import t from 'tap';
import { meanNll } from '../../src/calibrate/softmax';
import { fitTemperature, temperatureScale } from '../../src/calibrate/temperature';
import { Rng } from '../../src/util/rng';

/**
 * Logits z whose labels are drawn from softmax(z), handed to the fit as T_true · z: the model is then
 * exactly calibrated at temperature T_true, which the fit must recover.
 */
function syntheticLogits(seed: number, n: number, classes: number, trueTemperature: number): [Float32Array, Int32Array] {
  const rng = new Rng(seed);
  const logits = new Float32Array(n * classes);
  const labels = new Int32Array(n);
  const p = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const z = 2 * rng.nextNormal();
      logits[i * classes + k] = trueTemperature * z;
      p[k] = Math.exp(z);
      sum += p[k];
    }
    let u = rng.nextFloat() * sum;
    let label = 0;
    while (label < classes - 1 && u >= p[label]) u -= p[label++];
    labels[i] = label;
  }
  return [logits, labels];
}

t.test('recovers a known temperature from T_true-scaled logits', async (t) => {
  for (const trueT of [0.5, 2.5]) {
    const [logits, labels] = syntheticLogits(100 + trueT * 10, 20000, 10, trueT);
    const fit = fitTemperature(logits, labels, 10);
    t.ok(Math.abs(fit.temperature / trueT - 1) < 0.03, `T_true ${trueT}: fitted ${fit.temperature}`);
    t.equal(fit.atBound, null);
    t.ok(fit.evaluations < 60, `${fit.evaluations} NLL evaluations`);
    // A minimum: nearby temperatures do no better, and NLL at T=1 is what meanNll says.
    t.equal(fit.nllAfter, meanNll(logits, labels, 10, fit.temperature));
    t.equal(fit.nllBefore, meanNll(logits, labels, 10, 1));
    for (const f of [0.999, 1.001, 0.9, 1.1]) {
      t.ok(meanNll(logits, labels, 10, fit.temperature * f) >= fit.nllAfter, `T·${f} is no better`);
    }
    t.ok(fit.nllAfter < fit.nllBefore, `NLL ${fit.nllBefore} → ${fit.nllAfter}`);
  }
});

t.test('deterministic, and equal to a fine grid search', async (t) => {
  const [logits, labels] = syntheticLogits(5, 2000, 4, 1.7);
  const fit = fitTemperature(logits, labels, 4);
  t.same(fitTemperature(logits, labels, 4), fit, 'same input, same fit');
  let bestT = 0;
  let bestNll = Infinity;
  for (let u = Math.log(0.5); u <= Math.log(5); u += 1e-3) {
    const nll = meanNll(logits, labels, 4, Math.exp(u));
    if (nll < bestNll) [bestNll, bestT] = [nll, Math.exp(u)];
  }
  t.ok(Math.abs(Math.log(fit.temperature / bestT)) < 1e-3, `golden section ${fit.temperature} vs grid ${bestT}`);
  t.ok(fit.nllAfter <= bestNll, 'no grid point beats it');
});

t.test('optimum outside the bracket: the fit stops at the bound and says so', async (t) => {
  const logits = Float32Array.from([3, 0, 0, 3, 2, -1]);
  const labels = Int32Array.from([0, 1, 0]);
  const fit = fitTemperature(logits, labels, 2, { minTemperature: 0.1, maxTemperature: 10 });
  t.equal(fit.atBound, 'lower');
  t.ok(Math.abs(fit.temperature - 0.1) < 1e-6);
  const under = fitTemperature(Float32Array.from([0.1, 0, 0, 0.1, 0.1, 0]), Int32Array.from([1, 0, 0]), 2, { maxTemperature: 10 });
  // Two of three wrong by a small margin: dNLL/dβ > 0 at β = 1/T = 0, so uniform predictions (T → ∞) win.
  t.equal(under.atBound, 'upper');
  t.ok(Math.abs(under.temperature - 10) < 1e-5);
});

t.test('temperatureScale reports metrics before and after; over-confident logits get better calibrated', async (t) => {
  const [logits, labels] = syntheticLogits(9, 5000, 10, 3);
  const s = temperatureScale(logits, labels, 10);
  t.equal(s.before.temperature, 1);
  t.equal(s.after.temperature, s.fit.temperature);
  t.equal(s.after.nll, s.fit.nllAfter);
  t.equal(s.before.accuracy, s.after.accuracy, 'a positive temperature never changes the argmax');
  t.ok(s.after.equalWidth[0].ece < s.before.equalWidth[0].ece / 3, `ECE15 ${s.before.equalWidth[0].ece} → ${s.after.equalWidth[0].ece}`);
  t.throws(() => fitTemperature(Float32Array.from([NaN, 0]), Int32Array.from([0]), 2), /fitTemperature: logit of example 0, class 0 is NaN/);
  t.throws(() => fitTemperature(new Float32Array(0), new Int32Array(0), 2), /no validation examples/);
  t.throws(() => fitTemperature(logits, labels, 10, { minTemperature: 2, maxTemperature: 1 }), /minTemperature < maxTemperature/);
});
