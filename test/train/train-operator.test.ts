import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { firstValueFrom, from, lastValueFrom, take, tap, toArray } from 'rxjs';
import type { TrainEvent } from '../../src/train/events';
import { ofType } from '../../src/train/of-type';
import { train } from '../../src/train/train-operator';
import { Trainer } from '../../src/train/trainer';
import { syntheticBatches, tinyConfig, tinyConvModel, useCpuBackend } from '../helpers/tiny-training';

t.before(useCpuBackend);

const batches = syntheticBatches({ epochs: 3, stepsPerEpoch: 4, size: 8 });

t.test('batches in, the event vocabulary out, in order; the owned trainer is disposed at the end', async (t) => {
  const model = tinyConvModel(1);
  const baseline = tf.memory().numTensors;
  const config = tinyConfig(model, {
    sparsity: { method: 'cigl', density: 0.3, updateEvery: 2, randomMaskRate: 0.1 }, averageFromEpoch: 2,
    validate: async () => ({ loss: 1, accuracy: 0.5 }),
  });
  const events = await lastValueFrom(from(batches).pipe(train(config), toArray()));
  t.equal(tf.memory().numTensors, baseline, 'teardown disposed the trainer');
  const kinds = events.map((e) =>
    e.type === 'step' ? `s${e.step}` : e.type === 'maskUpdate' ? `m${e.step}` : e.type === 'batchEnd' ? `|${e.index}${e.epochEnded ? '.' : ''}` : `${e.type}${e.epoch}`,
  );
  t.same(kinds, [
    's0', '|0', 's1', '|1', 's2', 'm2', '|2', 's3', 'epochEnd0', '|3.',
    's4', 'm4', '|0', 's5', '|1', 's6', 'm6', '|2', 's7', 'epochEnd1', '|3.',
    's8', 'm8', '|0', 's9', '|1', 's10', '|2', 's11', 'snapshot2', 'epochEnd2', '|3.',
  ]);
  const updates = await lastValueFrom(from(events).pipe(ofType('maskUpdate'), toArray()));
  t.same(updates.map((u) => u.step), [2, 4, 6, 8], 'ofType narrows to one kind');
  t.ok(updates.every((u) => u.layers.every((l) => typeof l.regrownPruned === 'number')));
  model.dispose();
});

t.test('a failing batch errors the stream with the reason, and still releases the tensors', async (t) => {
  const model = tinyConvModel(2);
  const baseline = tf.memory().numTensors;
  const bad = [batches[0], batches[2]];
  await t.rejects(lastValueFrom(from(bad).pipe(train(tinyConfig(model)))), /batch \(epoch 0, index 2\) does not follow the trainer's position \(epoch 0, index 1\)/);
  t.equal(tf.memory().numTensors, baseline);
  const failing = tinyConfig(model, { validate: async () => Promise.reject(new Error('validation set unreadable')) });
  await t.rejects(lastValueFrom(from(batches).pipe(train(failing))), /validation set unreadable/);
  t.equal(tf.memory().numTensors, baseline);
  model.dispose();
});

t.test('unsubscribing early tears down; a given Trainer stays with its owner', async (t) => {
  const model = tinyConvModel(3);
  const baseline = tf.memory().numTensors;
  const first = await firstValueFrom(from(batches).pipe(train(tinyConfig(model)), take(1)));
  t.equal(first.type, 'step');
  t.equal(tf.memory().numTensors, baseline, 'owned trainer disposed on unsubscribe');

  const trainer = new Trainer(tinyConfig(model));
  const events: TrainEvent[] = await lastValueFrom(from(batches.slice(0, 4)).pipe(train(trainer), toArray()));
  t.equal(events.filter((e) => e.type === 'step').length, 4);
  t.equal(trainer.step, 4, 'the caller can read the trainer after the stream');
  const exported = trainer.exportState();
  t.equal(exported.json.step, 4);
  trainer.dispose();
  t.equal(tf.memory().numTensors, baseline);
  model.dispose();
});

t.test('consumption is acknowledged once per batch, after its events', async (t) => {
  const model = tinyConvModel(4);
  const seen: string[] = [];
  const consumed = { next: () => seen.push('ack') };
  await lastValueFrom(from(batches.slice(0, 3)).pipe(train(tinyConfig(model), { consumed }), tap((e) => (e.type === 'step' || e.type === 'batchEnd') && seen.push(e.type))));
  t.same(seen, ['step', 'batchEnd', 'ack', 'step', 'batchEnd', 'ack', 'step', 'batchEnd', 'ack']);
  model.dispose();
});
