import * as tf from '@tensorflow/tfjs';
import { firstValueFrom, from, lastValueFrom, of, toArray } from 'rxjs';
import t from 'tap';
import { gatherLogits, predictLogits } from '../../src/calibrate/evaluate';
import { calibrationMetrics } from '../../src/calibrate/metrics';
import { calibrateModel, measureSplit } from '../../src/calibrate/stage';
import { fitTemperature } from '../../src/calibrate/temperature';
import { stockOps } from '../../src/compute/stock-ops';
import { inputTensor, paramTensors } from '../../src/models/param-tensors';
import type { TrainEvent } from '../../src/train/events';
import { paramsOf, syntheticBatches, tinyModel } from '../average/tiny-model';

t.before(async () => {
  await tf.setBackend('cpu');
});

const validation = syntheticBatches(10, [16, 16, 9]);
const test = syntheticBatches(11, [20, 13]);

t.test('predictLogits: evaluation-mode logits per batch, plain arrays, no tensor left behind', async (t) => {
  const model = tinyModel(7);
  const params = paramsOf(model);
  const before = tf.memory().numTensors;
  const batches = await lastValueFrom(from(validation).pipe(predictLogits(model, params, stockOps), toArray()));
  t.equal(tf.memory().numTensors, before, 'numTensors unchanged');
  t.same(batches.map((b) => [b.epoch, b.index, b.logits.length, b.labels.length]), [[0, 0, 48, 16], [0, 1, 48, 16], [0, 2, 27, 9]]);
  const p = paramTensors(model, params);
  const direct = tf.tidy(() => model.apply(p.tensors, inputTensor(model, validation[2]), false, stockOps).dataSync());
  p.dispose();
  t.same(batches[2].logits, direct, 'same numbers as Model.apply in evaluation mode');
  const split = await firstValueFrom(from(batches).pipe(gatherLogits(3)));
  t.same(split.logits.subarray(32 * 3), direct);
  t.same(split.labels, Int32Array.from(validation.flatMap((b) => Array.from(b.labels))));
  model.dispose();
});

t.test('calibrateModel: temperature fitted on validation, test before/after, equal to the one-shot functions', async (t) => {
  const model = tinyModel(8);
  const params = paramsOf(model);
  const before = tf.memory().numTensors;
  const outcome = await firstValueFrom(calibrateModel(model, params, stockOps, { validation, test }));
  t.equal(tf.memory().numTensors, before, 'numTensors unchanged');

  const v = await firstValueFrom(from(validation).pipe(predictLogits(model, params, stockOps), gatherLogits(3)));
  const te = await firstValueFrom(from(test).pipe(predictLogits(model, params, stockOps), gatherLogits(3)));
  const fit = fitTemperature(v.logits, v.labels, 3);
  t.same(outcome.temperature, fit, 'the fit of the validation logits');
  t.same(outcome.validation.before, calibrationMetrics(v.logits, v.labels, 3));
  t.same(outcome.validation.after, calibrationMetrics(v.logits, v.labels, 3, { temperature: fit.temperature }));
  t.same(outcome.test!.before, calibrationMetrics(te.logits, te.labels, 3), 'test metrics streamed = one-shot');
  t.same(outcome.test!.after, calibrationMetrics(te.logits, te.labels, 3, { temperature: fit.temperature }));
  t.ok(outcome.validation.after.nll <= outcome.validation.before.nll);
  t.equal(outcome.test!.before.count, 33);

  const report = await firstValueFrom(measureSplit(model, params, stockOps, test, { binCounts: [5] }));
  t.same(report, calibrationMetrics(te.logits, te.labels, 3, { binCounts: [5] }));

  const noTest = await firstValueFrom(calibrateModel(model, params, stockOps, { validation }));
  t.equal(noTest.test, undefined);
  model.dispose();
});

t.test('NaN logits are rejected naming the batch; tensors are released on the error path', async (t) => {
  const model = tinyModel(10);
  const params = { ...paramsOf(model), 'fc.b': { shape: [3], values: Float32Array.from([0, NaN, 0]) } };
  const before = tf.memory().numTensors;
  await t.rejects(firstValueFrom(measureSplit(model, params, stockOps, test)), /batch \(epoch 0, index 0\): logit of example 0, class 1 is NaN/);
  await t.rejects(firstValueFrom(calibrateModel(model, params, stockOps, { validation })), /logit of example 0, class 1 is NaN/);
  t.equal(tf.memory().numTensors, before);
  model.dispose();
});
