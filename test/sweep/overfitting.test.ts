import t from 'tap';
import type { EpochRow } from '../../src/sweep/epochs';
import { overfitEvidence, risingTrend, trendWindow } from '../../src/sweep/overfitting';

const curve = (values: readonly number[]) => values.map((value, i) => ({ epoch: i + 1, value }));

t.test('the trend window is the last fifth of the epochs, at least 3', async (t) => {
  t.same([2, 3, 10, 15, 16, 40, 250].map(trendWindow), [3, 3, 3, 3, 4, 8, 50]);
});

t.test('rising: a positive slope over the window and the last value above the minimum', async (t) => {
  // Falls to epoch 4, then rises: the slope over the last 3 epochs is +0.1 per epoch.
  const u = risingTrend('Test NLL', curve([1.0, 0.8, 0.7, 0.6, 0.7, 0.8, 0.9]))!;
  t.same({ window: u.window, minimum: u.minimum, minimumEpoch: u.minimumEpoch, last: u.last, lastEpoch: u.lastEpoch, rising: u.rising }, { window: 3, minimum: 0.6, minimumEpoch: 4, last: 0.9, lastEpoch: 7, rising: true });
  t.ok(Math.abs(u.slope - 0.1) < 1e-12, `slope ${u.slope}`);
  t.notOk(risingTrend('x', curve([1.0, 0.9, 0.8, 0.7, 0.6]))!.rising, 'still falling');
  const late = risingTrend('x', curve([1.0, 0.5, 0.6, 0.9, 0.8, 0.7]))!;
  t.ok(late.last > late.minimum && late.slope < 0 && !late.rising, 'above the minimum but falling again over the window');
  const flat = risingTrend('x', curve([0.5, 0.5, 0.5, 0.5]))!;
  t.notOk(flat.rising, 'flat is not rising');
  t.equal(risingTrend('x', curve([0.5, 0.6])), undefined, 'fewer epochs than the window: cannot judge');
});

const rows = (trainAccuracy: number, nll: readonly number[], ece: readonly number[]): EpochRow[] =>
  nll.map((testLoss, i) => ({ epoch: i + 1, trainAccuracy: i === nll.length - 1 ? trainAccuracy : 0.5, testLoss, testEce15: ece[i] }));

t.test('the regime is reached only when all three checks hold, each flipping the verdict', async (t) => {
  const nllUp = [1.0, 0.8, 0.7, 0.75, 0.9, 1.1];
  const eceUp = [0.02, 0.03, 0.04, 0.05, 0.06, 0.07];
  const reached = overfitEvidence(rows(0.995, nllUp, eceUp));
  t.same([reached.trainAccuracyReached, reached.nll?.rising, reached.ece?.rising, reached.reached], [true, true, true, true]);
  t.equal(reached.trainAccuracy, 0.995);
  t.equal(reached.epochs, 6);
  t.same(overfitEvidence(rows(0.989, nllUp, eceUp)).reached, false, 'training accuracy just below 99%');
  t.equal(overfitEvidence(rows(0.99, nllUp, eceUp)).reached, true, '99% exactly counts');
  t.same(overfitEvidence(rows(0.995, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5], eceUp)).reached, false, 'test NLL falling');
  t.same(overfitEvidence(rows(0.995, nllUp, [0.07, 0.06, 0.05, 0.04, 0.03, 0.02])).reached, false, 'test ECE falling');
  const noTest = overfitEvidence([{ epoch: 1, trainAccuracy: 0.999 }, { epoch: 2, trainAccuracy: 0.999 }, { epoch: 3, trainAccuracy: 0.999 }]);
  t.same([noTest.nll, noTest.ece, noTest.reached], [undefined, undefined, false], 'no test curve (train.testEveryEpoch off): not reached');
});
