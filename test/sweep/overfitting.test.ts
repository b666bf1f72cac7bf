import t from 'tap';
import type { EpochRow } from '../../src/sweep/epochs';
import { overfitEvidence, risingTrend, trendWindow } from '../../src/sweep/overfitting';

const curve = (values: readonly number[]) => values.map((value, i) => ({ epoch: i + 1, value }));

t.test('the context slope window is the last fifth of the epochs, at least 3', async (t) => {
  t.same([2, 3, 10, 15, 16, 40, 250].map(trendWindow), [3, 3, 3, 3, 4, 8, 50]);
});

t.test('rising: the 5-epoch median ends at least 1% above its minimum, reached at least 5 epochs before the end', async (t) => {
  // Falls to 0.6 around epoch 6, then rises by 0.1 an epoch.
  const u = risingTrend('Test NLL', curve([1.0, 0.9, 0.8, 0.7, 0.6, 0.6, 0.6, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]))!;
  t.same(
    { minimum: u.minimum, minimumEpoch: u.minimumEpoch, last: u.last, lastEpoch: u.lastEpoch, rising: u.rising, window: u.window },
    { minimum: 0.6, minimumEpoch: 7, last: 0.9, lastEpoch: 13, rising: true, window: 3 },
  );
  t.ok(Math.abs(u.rise - 0.5) < 1e-12, `rise ${u.rise}`);
  t.ok(Math.abs(u.slope - 0.1) < 1e-12, `context slope ${u.slope}`);
  t.notOk(risingTrend('x', curve([1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55]))!.rising, 'still falling');
  t.notOk(risingTrend('x', curve(Array(12).fill(0.5)))!.rising, 'flat is not rising');
  const small = risingTrend('x', curve([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.005, 1.005, 1.005, 1.005, 1.005]))!;
  t.ok(small.rise > 0 && small.rise < 0.01 && !small.rising, `a rise under 1% (${small.rise}) is not rising`);
  // One lucky epoch is not a minimum: the median ignores it, though the raw minimum and a naive rule would not.
  const lucky = risingTrend('x', curve([1.0, 1.0, 0.2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))!;
  t.same([lucky.rawMinimum, lucky.rawMinimumEpoch, lucky.minimum, lucky.rising], [0.2, 3, 1.0, false], 'a single low epoch');
  // Lowest near the end: a dip and one rising epoch are not a rise after a minimum.
  const late = risingTrend('x', curve([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.7, 0.7, 0.75, 0.8, 0.85]))!;
  t.ok(late.rise > 0.01 && !late.rising, `minimum at epoch ${late.minimumEpoch}, fewer than 5 epochs before the end ${late.lastEpoch}`);
  // Flat at the end (as under cosine decay, where the learning rate nears 0) after a rise: rising, with a slope of 0.
  const plateau = risingTrend('x', curve([1.0, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))!;
  t.ok(plateau.rising && plateau.slope === 0, 'rose, then flat');
  t.equal(risingTrend('x', curve([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3])), undefined, 'fewer than 10 epochs: cannot judge');
});

const rows = (trainAccuracy: number, nll: readonly number[], ece: readonly number[]): EpochRow[] =>
  nll.map((testLoss, i) => ({ epoch: i + 1, trainAccuracy: i === nll.length - 1 ? trainAccuracy : 0.5, testLoss, testEce15: ece[i] }));

t.test('the regime is reached only when all three checks hold, each flipping the verdict', async (t) => {
  const nllUp = [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.75, 0.9, 1.1, 1.2, 1.3];
  const eceUp = [0.02, 0.02, 0.02, 0.02, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09];
  const reached = overfitEvidence(rows(0.995, nllUp, eceUp));
  t.same([reached.trainAccuracyReached, reached.nll?.rising, reached.ece?.rising, reached.reached], [true, true, true, true]);
  t.equal(reached.trainAccuracy, 0.995);
  t.equal(reached.epochs, 12);
  t.same(overfitEvidence(rows(0.989, nllUp, eceUp)).reached, false, 'training accuracy just below 99%');
  t.equal(overfitEvidence(rows(0.99, nllUp, eceUp)).reached, true, '99% exactly counts');
  t.same(overfitEvidence(rows(0.995, nllUp.map((_, i) => 1 - 0.05 * i), eceUp)).reached, false, 'test NLL falling');
  t.same(overfitEvidence(rows(0.995, nllUp, [...eceUp].reverse())).reached, false, 'test ECE falling');
  const noTest = overfitEvidence([{ epoch: 1, trainAccuracy: 0.999 }, { epoch: 2, trainAccuracy: 0.999 }, { epoch: 3, trainAccuracy: 0.999 }]);
  t.same([noTest.nll, noTest.ece, noTest.reached], [undefined, undefined, false], 'no test curve (train.testEveryEpoch off): not reached');
});
