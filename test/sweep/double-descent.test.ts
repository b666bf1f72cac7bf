import t from 'tap';
import { doubleDescent, type CurvePoint } from '../../src/sweep/double-descent';

/** Points at dense, 50%, 80%, 90%, 95%, 98%, 99% sparsity with these mean ECEs, `n` seeds each with sd `std`. */
function curve(means: readonly number[], std?: number, n = 3): CurvePoint[] {
  const densities = [1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01];
  return means.map((mean, i) => ({ density: densities[i], ece: std === undefined ? { n: 1, mean } : { n, mean, std } }));
}

const paperShape = [0.02, 0.025, 0.035, 0.045, 0.05, 0.038, 0.052];

t.test('the double descent appears when a rise, a fall and a rise are each beyond two standard errors', async (t) => {
  const dd = doubleDescent(curve(paperShape, 0.001));
  t.equal(dd.verdict, 'appears');
  // The best witness: dense 0.020 → 95% 0.050 → 98% 0.038 → 99% 0.052; its smallest change (0.012 vs 0.014) in SE of 0.001·√(2/3).
  t.same(dd.witness!.map((p) => p.density), [1, 0.05, 0.02, 0.01]);
  t.match(dd.detail, /^ECE 0\.0200 ± 0\.0010 at 0% rises to 95% \(0\.0500 ± 0\.0010; 36\.7 standard errors\), falls to 98% \(0\.0380 ± 0\.0010; 14\.7 standard errors\) and rises to 99% \(0\.0520 ± 0\.0010; 17\.1 standard errors\)$/);
  t.same(doubleDescent([...curve(paperShape, 0.001)].reverse()).witness!.map((p) => p.density), [1, 0.05, 0.02, 0.01], 'points are put in order of sparsity first');
});

t.test('the same means with wide spreads are within noise; with one seed everywhere, unresolved', async (t) => {
  const noisy = doubleDescent(curve(paperShape, 0.01));
  t.equal(noisy.verdict, 'within noise');
  t.match(noisy.detail, /falls to 98% \(0\.0380 ± 0\.0100; 1\.5 standard errors\)/);
  const single = doubleDescent(curve(paperShape));
  t.equal(single.verdict, 'unresolved');
  t.match(single.detail, /no spread to judge the change by/);
  t.equal(single.borrowedStd, undefined, 'no point has a spread to lend');
});

t.test('one-seed points borrow the largest spread measured on the curve', async (t) => {
  // Seeds at dense, 90% and 95% only (the study's layout): the dip 95% → 98% goes through one-seed points.
  const oneSeedAt = (points: CurvePoint[]) =>
    points.map((p) => (p.density === 0.1 || p.density === 0.05 || p.density === 1 ? p : { ...p, ece: { n: 1, mean: p.ece.mean } }));
  const mixed = doubleDescent(oneSeedAt(curve(paperShape, 0.001)));
  t.equal(mixed.verdict, 'appears');
  t.equal(mixed.borrowedStd, 0.001);
  // 95% → 98%: |0.038 − 0.050| / √(0.001²/3 + 0.001²/1) = 10.4.
  t.match(mixed.detail, /falls to 98% \(0\.0380; 10\.4 standard errors, with the borrowed spread\)/);
  t.match(mixed.detail, /\(one-seed points judged with a standard deviation of 0\.0010, the largest measured on this curve\)$/);
  // The largest spread is lent, not the one next to the point: one wide point makes the dip noise.
  const wide = oneSeedAt(curve(paperShape, 0.001)).map((p) => (p.density === 0.1 ? { ...p, ece: { n: 3, mean: p.ece.mean, std: 0.01 } } : p));
  const judged = doubleDescent(wide);
  t.equal(judged.borrowedStd, 0.01);
  t.equal(judged.verdict, 'within noise');
});

t.test('no rise, fall and rise: absent; too few points: cannot be tested', async (t) => {
  const monotone = doubleDescent(curve([0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05], 0.001));
  t.equal(monotone.verdict, 'absent');
  t.match(monotone.detail, /^the means never rise, fall and rise again \(0%: 0\.0200 ± 0\.0010, 50%: 0\.0250 ± 0\.0010, .*99%: 0\.0500 ± 0\.0010\)$/);
  t.equal(doubleDescent(curve([0.02, 0.04, 0.03, 0.03, 0.02, 0.01, 0.01], 0.001)).verdict, 'absent', 'a single peak');
  const three = doubleDescent(curve([0.02, 0.04, 0.03], 0.001));
  t.equal(three.verdict, 'cannot be tested');
  t.match(three.detail, /3 points: at least four sparsities are needed/);
});
