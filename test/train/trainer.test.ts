import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { dense } from '../../src/models/architecture';
import { buildModel } from '../../src/models/build';
import { randomWeightMultiplier } from '../../src/sparse/random-mask';
import type { MaskUpdateEvent, SnapshotEvent, TrainEvent } from '../../src/train/events';
import { effectiveParams } from '../../src/train/step';
import { snapshotIndices, Trainer } from '../../src/train/trainer';
import { SnapshotMean } from '../../src/average/snapshot-mean';
import type { TrainerState } from '../../src/train/trainer-state';
import { Rng } from '../../src/util/rng';
import { bytesOf, paramBytes, syntheticBatches, tinyConfig, tinyConvModel, useCpuBackend } from '../helpers/tiny-training';

t.before(useCpuBackend);

const batches = syntheticBatches({ epochs: 3, stepsPerEpoch: 4, size: 8 });

t.test('every mask update keeps each layer at its exact active count; grown weights and momentum start at 0; inactive weights stay exactly 0', async (t) => {
  for (const method of ['set', 'rigl', 'cigl'] as const) {
    const model = tinyConvModel(2);
    const trainer = new Trainer(tinyConfig(model, { sparsity: { method, density: 0.3, updateEvery: 2, randomMaskRate: 0.2 } }));
    t.same(trainer.layers.map((l) => l.name), ['c1.w', 'c2.w', 'fc1.w'], `${method}: conv and hidden dense weights are masked, not the classifier`);
    let updates = 0;
    let totalNew = 0;
    let totalReselected = 0;
    for (const batch of batches) {
      const before = new Map(trainer.layers.map((l) => [l.name, trainer.maskOf(l.name)]));
      const previousState = trainer.method.updatesMasks ? trainer.exportState() : undefined;
      const events = await trainer.process(batch);
      const update = events.find((e): e is MaskUpdateEvent => e.type === 'maskUpdate');
      const state = trainer.exportState();
      for (const layer of trainer.layers) {
        const mask = trainer.maskOf(layer.name);
        const active = mask.reduce((a, b) => a + b, 0);
        if (active !== layer.active) t.fail(`${method} step ${trainer.step - 1} ${layer.name}: ${active} active, expected ${layer.active}`);
        const w = state.arrays[`param/${layer.name}`].values;
        const m = state.arrays[`momentum/${layer.name}`].values;
        const leaks = mask.reduce((n, v, i) => n + (v === 0 && (w[i] !== 0 || m[i] !== 0) ? 1 : 0), 0);
        if (leaks) t.fail(`${method} step ${trainer.step - 1} ${layer.name}: ${leaks} inactive weights or momenta are not 0`);
        if (update) {
          const info = update.layers.find((l) => l.layer === layer.name)!;
          t.equal(info.density, layer.active / layer.size, `${method} step ${update.step} ${layer.name}: reported density is exact`);
          t.equal(info.pruned, info.grown, `${method} step ${update.step} ${layer.name}: pruned = grown = ${info.grown}`);
          const newlyGrown = [...mask.keys()].filter((i) => mask[i] === 1 && before.get(layer.name)![i] === 0);
          t.equal(newlyGrown.length, info.grown, `${method} step ${update.step} ${layer.name}: ${newlyGrown.length} new positions = ${info.grown} grown`);
          totalNew += newlyGrown.length;
          totalReselected += info.reselected;
          t.ok(newlyGrown.every((i) => w[i] === 0 && m[i] === 0), `${method} step ${update.step} ${layer.name}: grown weights and momentum are 0`);
          // An update step replaces the optimiser step: every position active before and after it, including
          // the reselected ones (dropped and regrown at once), keeps its value and momentum exactly.
          const previous = previousState!.arrays;
          const wBefore = previous[`param/${layer.name}`].values;
          const mBefore = previous[`momentum/${layer.name}`].values;
          const changedKept = [...mask.keys()].filter((i) => mask[i] === 1 && before.get(layer.name)![i] === 1 && (w[i] !== wBefore[i] || m[i] !== mBefore[i]));
          t.equal(changedKept.length, 0, `${method} step ${update.step} ${layer.name}: weights kept by the update (${info.reselected} reselected) keep value and momentum`);
        }
      }
      if (update) updates++;
    }
    t.equal(updates, 4, `${method}: updates at steps 2, 4, 6, 8 (ΔT 2, T_end 9)`);
    t.ok(totalNew > 0, `${method}: ${totalNew} positions were newly grown over the run`);
    if (method === 'rigl') t.ok(totalReselected > 0, `${method}: ${totalReselected} positions were dropped and regrown at once (the case the check above is for)`);
    trainer.dispose();
    model.dispose();
  }
});

t.test('effective weights W ⊙ M ⊙ Z / (1 − p) are exactly zero where M is 0', async (t) => {
  const model = tinyConvModel(3);
  const trainer = new Trainer(tinyConfig(model, { sparsity: { method: 'cigl', density: 0.2, updateEvery: 2, randomMaskRate: 0.3 } }));
  for (const batch of batches.slice(0, 5)) await trainer.process(batch);
  const multipliers = new Map(trainer.layers.map((l) => [l.name, tf.tensor(randomWeightMultiplier(trainer.maskOf(l.name), 0.3, new Rng(9)), l.shape as number[])]));
  const eff = tf.tidy(() => effectiveParams(model.params, multipliers));
  for (const layer of trainer.layers) {
    const mask = trainer.maskOf(layer.name);
    const values = eff[layer.name].dataSync();
    const w = model.params.get(layer.name)!.dataSync();
    const m = multipliers.get(layer.name)!.dataSync();
    t.ok(mask.every((v, i) => v === 1 || values[i] === 0), `${layer.name}: zero wherever M = 0`);
    t.ok(mask.every((v, i) => v === 0 || values[i] === Math.fround(w[i] * m[i])), `${layer.name}: W · 1/(1−p) or 0 where M = 1`);
  }
  tf.dispose([...Object.entries(eff).filter(([n]) => multipliers.has(n)).map(([, v]) => v), ...multipliers.values()]);
  trainer.dispose();
  model.dispose();
});

t.test('RigL grows where the dense gradient is largest (one-hot inputs make it predictable)', async (t) => {
  // x = e_j for every image makes ∂L/∂W1 = xᵀδ nonzero only in row j of fc1.w [8, 16]: RigL must grow
  // there, at the positions of largest |∂L/∂W1| among those inactive after the drop. A method growing
  // by the masked gradient could not (it is 0 at inactive positions); SET grows elsewhere.
  const j = 5;
  const run = async (method: 'rigl' | 'set') => {
    const model = buildModel({ name: 'onehot', inputShape: [8], numClasses: 3, nodes: [dense('fc1', 16, false), dense('fc', 3, false, false)] }, 4);
    const trainer = new Trainer(tinyConfig(model, {
      epochs: 1, stepsPerEpoch: 3, seed: 4,
      sparsity: { method, density: 0.25, distribution: 'uniform', updateEvery: 1, endFraction: 1 },
      optimizer: { weightDecay: 0 },
    }));
    const rng = new Rng(1);
    const labels = Int32Array.from({ length: 6 }, (_, i) => i % 3);
    const random = Float32Array.from({ length: 48 }, () => rng.nextNormal());
    const oneHot = Float32Array.from({ length: 48 }, (_, i) => (i % 8 === j ? 1 : 0));
    const batch = (index: number, x: Float32Array) => ({ epoch: 0, index, size: 6, height: 1, width: 1, channels: 8, x, labels });
    await trainer.process(batch(0, random));
    // The independent prediction, from the state before the update step.
    const before = trainer.maskOf('fc1.w');
    const w1 = model.params.get('fc1.w')!.dataSync().slice();
    const grad = tf.tidy(() => {
      const params = Object.fromEntries(model.params) as Record<string, tf.Tensor>;
      const g = tf.grads((w: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, 'int32'), 3), model.apply({ ...params, 'fc1.w': w }, tf.tensor2d(oneHot, [6, 8]), true, trainer.ops)))([params['fc1.w']]);
      return g[0].dataSync().slice();
    });
    const active = [...before.keys()].filter((i) => before[i] === 1);
    const k = Math.floor(trainer.schedule.dropFractionAt(1) * active.length);
    const pruned = new Set(active.sort((a, b) => Math.abs(w1[a]) - Math.abs(w1[b]) || a - b).slice(0, k));
    const candidates = [...before.keys()].filter((i) => before[i] === 0 || pruned.has(i));
    const expected = candidates.sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a]) || a - b).slice(0, k).sort((a, b) => a - b);
    const events = await trainer.process(batch(1, oneHot));
    const after = trainer.maskOf('fc1.w');
    const grown = [...after.keys()].filter((i) => after[i] === 1 && (before[i] === 0 || pruned.has(i)));
    const rowCandidates = candidates.filter((i) => Math.floor(i / 16) === j).length;
    trainer.dispose();
    model.dispose();
    return { k, grown, expected, rowCandidates, update: events.find((e) => e.type === 'maskUpdate') };
  };
  const rigl = await run('rigl');
  t.ok(rigl.update, 'step 1 is a mask update');
  t.ok(rigl.rowCandidates >= rigl.k, `precondition: row ${j} has ${rigl.rowCandidates} ≥ k = ${rigl.k} candidates`);
  t.ok(rigl.k > 0 && rigl.grown.every((i) => Math.floor(i / 16) === j), `all ${rigl.grown.length} grown positions are in row ${j}`);
  t.same(rigl.grown, rigl.expected, 'exactly the top-k |dense gradient| positions among the inactive ones');
  const set = await run('set');
  t.ok(set.grown.some((i) => Math.floor(i / 16) !== j), 'SET (random growth) grows outside that row: the check discriminates');
});

t.test('same seed gives bit-identical weights after N steps; another seed does not', async (t) => {
  const runOnce = async (seed: number) => {
    const model = tinyConvModel(5);
    const trainer = new Trainer(tinyConfig(model, { seed, sparsity: { method: 'cigl', density: 0.3, updateEvery: 2, randomMaskRate: 0.1 } }));
    for (const batch of batches.slice(0, 6)) await trainer.process(batch);
    const bytes = paramBytes(model);
    trainer.dispose();
    model.dispose();
    return bytes;
  };
  const a = await runOnce(7);
  t.ok(a.equals(await runOnce(7)), 'same seed: identical bytes');
  t.notOk(a.equals(await runOnce(8)), 'other seed (other masks and Z): different weights');
});

t.test('tf.memory().numTensors is constant across steps, mask updates, snapshots and validation', async (t) => {
  const model = tinyConvModel(6);
  const baseline = tf.memory().numTensors;
  const trainer = new Trainer(tinyConfig(model, {
    sparsity: { method: 'cigl', density: 0.3, updateEvery: 2, randomMaskRate: 0.1 },
    averageFromEpoch: 1,
    validate: async ({ params, model, ops }) => {
      const loss = tf.tidy(() => ops.crossEntropy(model.apply(params, tf.tensor4d(batches[0].x, [8, 8, 8, 3]), false, ops), tf.tensor1d(batches[0].labels, 'int32')).dataSync()[0]);
      return { loss, accuracy: 0.5 };
    },
  }));
  const afterConstruction = tf.memory().numTensors;
  const counts: number[] = [];
  for (const batch of batches) {
    await trainer.process(batch);
    counts.push(tf.memory().numTensors);
  }
  t.same(counts, counts.map(() => afterConstruction), `every step leaves ${afterConstruction} tensors`);
  trainer.dispose();
  t.equal(tf.memory().numTensors, baseline, 'dispose frees the optimiser state and mask tensors');
  model.dispose();
});

const timeless = (events: readonly TrainEvent[]) => events.map((e) => {
  const { wallTimeMs: _w, ...rest } = e as TrainEvent & { imagesPerSecond?: number };
  if (e.type === 'step') delete (rest as { imagesPerSecond?: number }).imagesPerSecond;
  if (e.type === 'snapshot') {
    const s = e as SnapshotEvent;
    return { ...rest, weights: Object.entries(s.weights).map(([n, a]) => `${n}:${bytesOf(a.values).toString('base64')}`), masks: Object.entries(s.masks).map(([n, a]) => `${n}:${bytesOf(a.values).toString('base64')}`) };
  }
  return rest;
});

t.test('resuming from exported state is bit-identical to not stopping (mid-epoch, across mask updates)', async (t) => {
  const config = (model: ReturnType<typeof tinyConvModel>) => tinyConfig(model, {
    sparsity: { method: 'cigl', density: 0.3, updateEvery: 2, randomMaskRate: 0.1 }, averageFromEpoch: 1,
    validate: async ({ params }) => ({ loss: params['fc.b'].dataSync()[0], accuracy: 0 }),
  });
  const straightModel = tinyConvModel(8);
  const straight = new Trainer(config(straightModel));
  const straightEvents: TrainEvent[] = [];
  for (const batch of batches) straightEvents.push(...(await straight.process(batch)));

  const firstModel = tinyConvModel(8);
  const first = new Trainer(config(firstModel));
  for (const batch of batches.slice(0, 6)) await first.process(batch);
  const exported = first.exportState();
  // Through JSON and fresh arrays, as a checkpoint file would carry it.
  const saved: TrainerState = {
    json: JSON.parse(JSON.stringify(exported.json)),
    arrays: Object.fromEntries(Object.entries(exported.arrays).map(([n, a]) => [n, { shape: [...a.shape], values: a.values.slice() }])),
  };
  first.dispose();
  firstModel.dispose();

  const resumedModel = tinyConvModel(99); // other initial weights: everything must come from the state
  const resumed = new Trainer(config(resumedModel));
  resumed.importState(saved);
  t.equal(resumed.step, 6);
  const resumedEvents: TrainEvent[] = [];
  for (const batch of batches.slice(6)) resumedEvents.push(...(await resumed.process(batch)));

  t.ok(paramBytes(resumedModel).equals(paramBytes(straightModel)), 'final weights bit-identical');
  const bn = (m: typeof straightModel) => Buffer.concat([...m.bnStats.values()].flatMap((s) => [bytesOf(s.mean.dataSync() as Float32Array), bytesOf(s.variance.dataSync() as Float32Array)]));
  t.ok(bn(resumedModel).equals(bn(straightModel)), 'BatchNorm running statistics bit-identical');
  const tail = straightEvents.filter((e) => e.step >= 6);
  t.ok(tail.some((e) => e.type === 'maskUpdate') && tail.some((e) => e.type === 'snapshot'), 'the resumed part includes mask updates and snapshots');
  t.same(timeless(resumedEvents), timeless(tail), 'the same events (losses, regrownPruned, epoch means, snapshots)');
  for (const l of straight.layers) t.ok(bytesOf(resumed.maskOf(l.name)).equals(bytesOf(straight.maskOf(l.name))), `${l.name}: same mask`);

  const other = new Trainer({ ...config(tinyConvModel(1)), seed: 2 });
  t.throws(() => other.importState(saved), /trainer state: seed is 1, this trainer has 2/);
  const broken: TrainerState = { json: saved.json, arrays: { ...saved.arrays, 'mask/c2.w': { shape: [1], values: new Float32Array(1) } } };
  t.throws(() => resumed.importState(broken), /array 'mask\/c2\.w' has shape \[1\], expected \[3, 3, 4, 8\]/);
  other.dispose();
  other.model.dispose();
  [straight, resumed].forEach((tr) => tr.dispose());
  [straightModel, resumedModel].forEach((m) => m.dispose());
});

t.test('snapshots from the averaging start epoch: M ⊙ Z_e ⊙ W / (1 − p) plus BatchNorm affine parameters and masks', async (t) => {
  const p = 0.5;
  const model = tinyConvModel(10);
  const seen: number[] = [];
  const trainer = new Trainer(tinyConfig(model, {
    sparsity: { method: 'cigl', density: 0.5, updateEvery: 2, randomMaskRate: p }, averageFromEpoch: 1,
    validate: async ({ epoch }) => {
      seen.push(epoch);
      return { loss: 1.5, accuracy: 0.25, ece: 0.125 };
    },
  }));
  const events: TrainEvent[] = [];
  for (const batch of batches) events.push(...(await trainer.process(batch)));
  const snapshots = events.filter((e): e is SnapshotEvent => e.type === 'snapshot');
  t.same(snapshots.map((s) => s.epoch), [1, 2], 'one snapshot per epoch from epoch 1');
  t.same(seen, [0, 1, 2], 'validation after every epoch');
  const ends = events.filter((e) => e.type === 'epochEnd');
  t.same(ends.map((e) => e.type === 'epochEnd' && [e.epoch, e.step, e.validationLoss, e.validationAccuracy, e.validationEce]), [[0, 3, 1.5, 0.25, 0.125], [1, 7, 1.5, 0.25, 0.125], [2, 11, 1.5, 0.25, 0.125]]);
  const stepLosses = events.filter((e) => e.type === 'step' && e.epoch === 2).map((e) => (e.type === 'step' ? e.loss : 0));
  const last = ends[2];
  t.ok(last.type === 'epochEnd' && Math.abs(last.trainLoss - stepLosses.reduce((a, b) => a + b, 0) / 4) < 1e-9, 'trainLoss is the epoch mean of the step losses');

  const snap = snapshots[1];
  const scale = Math.fround(1 / (1 - p));
  let active = 0;
  let kept = 0;
  for (const layer of trainer.layers) {
    const w = model.params.get(layer.name)!.dataSync();
    const mask = trainer.maskOf(layer.name);
    const s = snap.weights[layer.name].values;
    t.ok(bytesOf(snap.masks[layer.name].values).equals(bytesOf(Float32Array.from(mask))), `${layer.name}: snapshot carries M`);
    t.ok(mask.every((v, i) => (v === 0 ? s[i] === 0 : s[i] === 0 || s[i] === Math.fround(w[i] * scale))), `${layer.name}: each entry is 0 or W / (1 − p)`);
    mask.forEach((v, i) => {
      active += v;
      if (v && s[i] !== 0) kept++;
    });
  }
  const sigma = Math.sqrt(active * p * (1 - p));
  t.ok(Math.abs(kept - active * (1 - p)) < 5 * sigma, `Z_e keeps ${kept} of ${active} active weights ≈ (1 − p) (5σ = ${(5 * sigma).toFixed(1)})`);
  for (const name of ['c1.gamma', 'c1.beta', 'c2.gamma', 'fc.w', 'fc.b', 'fc1.b']) {
    t.ok(bytesOf(snap.weights[name].values).equals(bytesOf(model.params.get(name)!.dataSync() as Float32Array)), `${name} as is`);
  }
  t.notOk(bytesOf(snapshots[0].weights['c2.w'].values).equals(bytesOf(snap.weights['c2.w'].values)), 'a fresh Z_e per epoch');
  trainer.dispose();
  model.dispose();
});

t.test('dense trains every weight with no masks; static never changes its mask', async (t) => {
  const denseModel = tinyConvModel(11);
  const denseTrainer = new Trainer(tinyConfig(denseModel, { sparsity: { method: 'dense' } }));
  const denseEvents: TrainEvent[] = [];
  for (const batch of batches.slice(0, 4)) denseEvents.push(...(await denseTrainer.process(batch)));
  t.same(denseTrainer.layers, []);
  t.notOk(denseEvents.some((e) => e.type === 'maskUpdate'));
  t.ok(Array.from(denseModel.params.get('c2.w')!.dataSync()).every((v) => v !== 0), 'dense weights are all nonzero');
  denseTrainer.dispose();
  denseModel.dispose();

  const staticModel = tinyConvModel(11);
  const staticTrainer = new Trainer(tinyConfig(staticModel, { sparsity: { method: 'static', density: 0.3 } }));
  const initial = staticTrainer.maskOf('c2.w');
  const staticEvents: TrainEvent[] = [];
  for (const batch of batches.slice(0, 6)) staticEvents.push(...(await staticTrainer.process(batch)));
  t.notOk(staticEvents.some((e) => e.type === 'maskUpdate'));
  t.ok(bytesOf(staticTrainer.maskOf('c2.w')).equals(bytesOf(initial)), 'static mask unchanged');
  staticTrainer.dispose();
  staticModel.dispose();
});

t.test('bad batches and configs are rejected with the offending value named', async (t) => {
  const model = tinyConvModel(12);
  const trainer = new Trainer(tinyConfig(model));
  await t.rejects(trainer.process(batches[1]), /batch \(epoch 0, index 1\) does not follow the trainer's position \(epoch 0, index 0\)/);
  await t.rejects(trainer.process({ ...batches[0], labels: Int32Array.from([0, 1, 2, 3, 4, 0, 0, 0]) }), /label 4 at 4 is outside \[0, 4\)/);
  await t.rejects(trainer.process({ ...batches[0], height: 4, width: 16 }), /images are 4×16×3, model tiny-cnn expects \[8, 8, 3\]/);
  t.throws(() => new Trainer(tinyConfig(model, { stepsPerEpoch: 0 })), /stepsPerEpoch must be a positive integer, got 0/);
  t.throws(() => new Trainer(tinyConfig(model, { sparsity: { method: 'rigl', density: 0 } })), /sparsity\.density must be in \(0, 1\], got 0/);
  t.throws(() => new Trainer(tinyConfig(model, { sparsity: { method: 'set' } })), /sparsity\.density must be in \(0, 1\], got undefined/);
  for (const batch of batches) await trainer.process(batch);
  await t.rejects(trainer.process({ ...batches[0], epoch: 3 }), /arrived after the last of 12 training steps/);
  trainer.dispose();
  await t.rejects(trainer.process(batches[0]), /disposed/);
  model.dispose();
});

t.test('snapshotsPerEpoch: 1 snapshot at each averaged epoch end, 4 evenly spaced; a resume mid-epoch averages to the same bits', async (t) => {
  const eight = syntheticBatches({ epochs: 3, stepsPerEpoch: 8, size: 8, seed: 4 });
  const config = (model: ReturnType<typeof tinyConvModel>, snapshotsPerEpoch: number) => tinyConfig(model, {
    stepsPerEpoch: 8, sparsity: { method: 'cigl', density: 0.3, updateEvery: 3, randomMaskRate: 0.1 }, averageFromEpoch: 1, snapshotsPerEpoch,
  });
  const positions = async (snapshotsPerEpoch: number): Promise<number[]> => {
    const model = tinyConvModel(8);
    const trainer = new Trainer(config(model, snapshotsPerEpoch));
    const steps: number[] = [];
    for (const batch of eight) for (const e of await trainer.process(batch)) if (e.type === 'snapshot') steps.push(e.step);
    trainer.dispose();
    model.dispose();
    return steps;
  };
  t.same(await positions(1), [15, 23], 'one per averaged epoch, after its last batch (index 7)');
  t.same(await positions(4), [9, 11, 13, 15, 17, 19, 21, 23], 'four per averaged epoch: after indices 1, 3, 5, 7');
  t.same(snapshotIndices(352, 4), [87, 175, 263, 351], 'a 352-batch epoch: every 88 batches, the last at its end');
  t.same(snapshotIndices(10, 3), [3, 6, 9]);
  t.throws(() => snapshotIndices(8, 9), /average\.snapshotsPerEpoch is 9, but an epoch has only 8 batches/);
  t.throws(() => new Trainer(config(tinyConvModel(1), 0)), /average\.snapshotsPerEpoch must be an integer ≥ 1, got 0/);

  // Straight through, folding every snapshot, against a stop after step 11 (mid-epoch 1, between snapshots)
  // and a resume from the exported trainer and averaging state.
  const average = async (stopAfter?: number): Promise<Buffer> => {
    const model = tinyConvModel(8);
    let trainer = new Trainer(config(model, 4));
    let mean = new SnapshotMean();
    for (const batch of eight) {
      for (const e of await trainer.process(batch)) if (e.type === 'snapshot') mean.add(e);
      if (trainer.step === stopAfter) {
        const state = JSON.parse(JSON.stringify({ trainer: trainer.exportState().json, mean: mean.exportState().json }));
        const arrays = { trainer: trainer.exportState().arrays, mean: mean.exportState().arrays };
        trainer.dispose();
        trainer = new Trainer(config(tinyConvModel(77), 4));
        trainer.importState({ json: state.trainer, arrays: arrays.trainer });
        mean = SnapshotMean.fromState({ json: state.mean, arrays: arrays.mean });
      }
    }
    const result = mean.result();
    t.equal(result.snapshots, 8, `8 snapshots averaged${stopAfter ? ` (resumed after step ${stopAfter})` : ''}`);
    trainer.dispose();
    return Buffer.concat(Object.values(result.weights).map((w) => bytesOf(w.values)));
  };
  t.ok((await average()).equals(await average(11)), 'the averaged weights are bit-identical after a mid-epoch resume');
});
