import { from, lastValueFrom, toArray } from 'rxjs';
import t from 'tap';
import { SnapshotMean } from '../../src/average/snapshot-mean';
import { keepTopMagnitudes } from '../../src/average/top-k-mask';
import type { SnapshotEvent, TrainEvent } from '../../src/train/events';
import type { NamedArrays } from '../../src/util/named-arrays';
import { Rng } from '../../src/util/rng';
import { averageSnapshots, type AverageEvent } from '../../src/pipeline/stages';

const arr = (values: number[], shape = [values.length]) => ({ shape, values: Float32Array.from(values) });

function snapshot(epoch: number, weights: NamedArrays, masks: NamedArrays): SnapshotEvent {
  return { type: 'snapshot', step: epoch * 10, epoch, weights, masks, wallTimeMs: 0 };
}

const step = (epoch: number): TrainEvent => ({ type: 'step', step: epoch, epoch, loss: 1, accuracy: 0.5, lr: 0.1, imagesPerSecond: 1, wallTimeMs: 0 });

t.test('average of identical snapshots equals the snapshot, bit for bit, even over 1000 snapshots', async (t) => {
  const weights = { conv: arr([0.1, 0, -0.3, 0, 1e-7, 0], [1, 1, 2, 3]), 'bn.gamma': arr([1.1, 0.9]), 'bn.beta': arr([0.1, -0.2]) };
  const masks = { conv: arr([1, 0, 1, 0, 1, 0], [1, 1, 2, 3]) };
  const mean = new SnapshotMean();
  for (let e = 0; e < 1000; e++) mean.add(snapshot(e, weights, masks));
  const r = mean.result();
  t.equal(r.snapshots, 1000);
  for (const name of Object.keys(weights) as (keyof typeof weights)[]) {
    t.same(r.weights[name].values, weights[name].values, `${name} unchanged`);
    t.same(r.weights[name].shape, weights[name].shape);
  }
  t.same(r.masks.conv.values, masks.conv.values);
  t.same(r.reMaskedLayers, []);
});

t.test('known mean of different snapshots sharing a mask; BatchNorm affine parameters averaged too', async (t) => {
  const masks = { fc: arr([1, 1, 0, 1]) };
  const mean = new SnapshotMean();
  mean.add(snapshot(0, { fc: arr([1, 2, 0, 3]), 'bn.gamma': arr([1, 2]) }, masks));
  mean.add(snapshot(1, { fc: arr([3, 2, 0, 1]), 'bn.gamma': arr([2, 2]) }, masks));
  mean.add(snapshot(2, { fc: arr([2, 5, 0.5, 0]), 'bn.gamma': arr([0, 5]) }, masks));
  const r = mean.result();
  t.same(r.weights.fc.values, Float32Array.from([2, 3, 0, 4 / 3]), 'mean of the masked entries; the entry outside M is zeroed');
  t.same(r.weights['bn.gamma'].values, Float32Array.from([1, 3]));
  t.same(r.masks.fc.values, masks.fc.values);
  t.same(r.epochs, [0, 1, 2]);
  mean.add(snapshot(3, { fc: arr([2, 3, 0, 4 / 3]), 'bn.gamma': arr([1, 3]) }, masks));
  t.same(mean.result().weights['bn.gamma'].values, Float32Array.from([1, 3]), 'adding the mean itself keeps the mean');
});

t.test('masks that differ: top-|W̄| keeps exactly the target count, ties to the latest mask', async (t) => {
  const mean = new SnapshotMean();
  mean.add(snapshot(0, { conv: arr([4, -3, 1, 0, 0, 0, 0, 0]) }, { conv: arr([1, 1, 1, 0, 0, 0, 0, 0]) }));
  mean.add(snapshot(1, { conv: arr([0, 0, 2, -6, 0.5, 0, 0, 0]) }, { conv: arr([0, 0, 1, 1, 1, 0, 0, 0]) }));
  const r = mean.result();
  // W̄ = [2, −1.5, 1.5, −3, .25, 0, 0, 0]: keep −3 and 2, then 1.5 at index 2 (in the latest mask) over −1.5.
  t.same(r.masks.conv.values, Float32Array.from([1, 0, 1, 1, 0, 0, 0, 0]));
  t.same(r.weights.conv.values, Float32Array.from([2, 0, 1.5, -3, 0, 0, 0, 0]));
  t.same(r.reMaskedLayers, ['conv']);
});

t.test('exact density after the top-k rule on random masks', async (t) => {
  const rng = new Rng(5);
  const layers = { a: [1000, 100], b: [333, 37] } as const; // [size, active]
  const sums: Record<string, Float64Array> = { a: new Float64Array(1000), b: new Float64Array(333) };
  const mean = new SnapshotMean();
  const snapshots = 6;
  for (let e = 0; e < snapshots; e++) {
    const weights: Record<string, ReturnType<typeof arr>> = { bias: arr([rng.nextNormal()]) };
    const masks: Record<string, ReturnType<typeof arr>> = {};
    for (const [name, [size, active]] of Object.entries(layers)) {
      const order = rng.permutation(size);
      const m = new Float32Array(size);
      for (let i = 0; i < active; i++) m[order[i]] = 1;
      masks[name] = { shape: [size], values: m };
      weights[name] = { shape: [size], values: m.map((v) => v * rng.nextNormal()) };
      weights[name].values.forEach((v, i) => (sums[name][i] += v));
    }
    mean.add(snapshot(e, weights, masks));
  }
  const r = mean.result();
  for (const [name, [size, active]] of Object.entries(layers)) {
    const m = r.masks[name].values;
    const w = r.weights[name].values;
    t.equal(m.reduce((s, v) => s + v, 0), active, `layer ${name}: exactly ${active} of ${size} active`);
    let minKept = Infinity;
    let maxDropped = 0;
    let wrong = 0;
    for (let i = 0; i < size; i++) {
      const expected = Math.fround(sums[name][i] / snapshots);
      if (m[i]) {
        minKept = Math.min(minKept, Math.abs(expected));
        if (w[i] !== expected) wrong++;
      } else {
        maxDropped = Math.max(maxDropped, Math.abs(expected));
        if (w[i] !== 0) wrong++;
      }
    }
    t.equal(wrong, 0, 'kept entries hold the mean, dropped entries 0');
    t.ok(minKept > maxDropped, `smallest kept |W̄| ${minKept} > largest dropped ${maxDropped}`);
  }
  t.same([...r.reMaskedLayers].sort(), ['a', 'b']);
});

t.test('keepTopMagnitudes: ties by magnitude, then the preferred mask, then the lower index', async (t) => {
  const values = Float32Array.from([0, 2, 0, -2, 0, 1]);
  t.same(keepTopMagnitudes(values, 2), Uint8Array.from([0, 1, 0, 1, 0, 0]));
  t.same(keepTopMagnitudes(values, 3), Uint8Array.from([0, 1, 0, 1, 0, 1]));
  t.same(keepTopMagnitudes(values, 4), Uint8Array.from([1, 1, 0, 1, 0, 1]), 'zeros: lowest index first');
  t.same(keepTopMagnitudes(values, 4, Uint8Array.from([0, 0, 0, 0, 1, 0])), Uint8Array.from([0, 1, 0, 1, 1, 1]), 'zeros: preferred first');
  t.same(keepTopMagnitudes(values, 1, Uint8Array.from([0, 0, 0, 1, 0, 0])), Uint8Array.from([0, 0, 0, 1, 0, 0]), '|2| = |−2|: preferred wins');
  t.same(keepTopMagnitudes(values, 0), new Uint8Array(6));
  t.throws(() => keepTopMagnitudes(values, 7), /k must be an integer in \[0, 6\], got 7/);
});

t.test('bad snapshots are rejected, naming epoch and parameter, and leave the mean untouched', async (t) => {
  const mean = new SnapshotMean();
  mean.add(snapshot(0, { w: arr([1, 2]), b: arr([0]) }, { w: arr([1, 1]) }));
  t.throws(() => mean.add(snapshot(1, { w: arr([1, 2, 3]), b: arr([0]) }, { w: arr([1, 1, 0]) })), /epoch 1 .*'w' has shape \[3\], the first snapshot \[2\]/);
  t.throws(() => mean.add(snapshot(2, { w: arr([1, 2]) }, { w: arr([1, 1]) })), /epoch 2.*missing \[b\]/);
  t.throws(() => mean.add(snapshot(3, { w: arr([1, 0]), b: arr([0]) }, { w: arr([1, 0]) })), /epoch 3.*'w' has 1 active weights, the first snapshot 2/);
  t.throws(() => mean.add(snapshot(4, { w: arr([1, 2]), b: arr([NaN]) }, { w: arr([1, 1]) })), /epoch 4.*'b' has NaN at index 0/);
  t.throws(() => mean.add(snapshot(5, { w: arr([1, 2]), b: arr([0]) }, { w: arr([1, 0.5]) })), /mask of 'w' has value 0.5 at 1/);
  t.throws(() => mean.add(snapshot(6, { w: arr([1, 2]), b: arr([0]) }, { x: arr([1, 1]) })), /masks layers \[x\]/);
  t.equal(mean.count, 1);
  t.same(mean.result().weights.w.values, Float32Array.from([1, 2]));
  t.throws(() => new SnapshotMean().result(), /no snapshot/);
});

t.test('the averageSnapshots stage: passes every event on, emits the running average after each snapshot, starts from a resumed average', async (t) => {
  const masks = { w: arr([1, 1]) };
  const events: TrainEvent[] = [step(0), snapshot(1, { w: arr([1, 2]) }, masks), step(1), snapshot(2, { w: arr([3, 4]) }, masks), step(3)];
  const out = await lastValueFrom(from(events).pipe(averageSnapshots({}), toArray()));
  t.same(out.map((e) => e.type), ['step', 'snapshot', 'average', 'step', 'snapshot', 'average', 'step'], 'the average right after its snapshot, nothing dropped');
  const averages = out.filter((e): e is AverageEvent => e.type === 'average');
  t.same(averages.map((e) => e.step), [10, 20], 'each names its latest snapshot');
  t.equal(averages[0].average, averages[1].average, 'one accumulator per subscription');
  const mean = averages[1].average.result();
  t.same(mean.weights.w.values, Float32Array.from([2, 3]));
  t.same([mean.snapshots, mean.epochs], [2, [1, 2]]);

  // A resumed run starts from its checkpoint's average, announced before any event.
  const before = new SnapshotMean();
  before.add(snapshot(0, { w: arr([2, 2]) }, masks));
  const resumed = await lastValueFrom(from([snapshot(1, { w: arr([4, 6]) }, masks)]).pipe(averageSnapshots({ resumedAverage: before.exportState() }), toArray()));
  t.same(resumed.map((e) => e.type), ['average', 'snapshot', 'average']);
  t.same((resumed[2] as AverageEvent).average.result().weights.w.values, Float32Array.from([3, 4]));
  t.equal(before.count, 1, 'the restored state is copied, not added to');

  await t.rejects(
    lastValueFrom(from([snapshot(0, { w: arr([1, 1]) }, masks), snapshot(1, { w: arr([1]) }, { w: arr([1]) })]).pipe(averageSnapshots({}))),
    /snapshot of epoch 1/,
  );
});

t.test('the accumulator survives a checkpoint round trip bit-exactly', async (t) => {
  const shape = [2, 3];
  const mask = { shape, values: Float32Array.from([1, 0, 1, 1, 0, 0]) };
  const snap = (epoch: number, w: number[]): SnapshotEvent => ({
    type: 'snapshot', step: epoch * 10, epoch, wallTimeMs: 0,
    weights: { 'c.w': { shape, values: Float32Array.from(w) }, 'c.b': { shape: [1], values: Float32Array.from([epoch / 3]) } },
    masks: { 'c.w': mask },
  });
  const straight = new SnapshotMean();
  const resumed = new SnapshotMean();
  straight.add(snap(0, [0.1, 0, 0.7, 1 / 3, 0, 0]));
  resumed.add(snap(0, [0.1, 0, 0.7, 1 / 3, 0, 0]));
  const state = resumed.exportState();
  const restored = SnapshotMean.fromState({ arrays: state.arrays, json: JSON.parse(JSON.stringify(state.json)) });
  straight.add(snap(1, [0.2, 0, 0.3, 2 / 7, 0, 0]));
  restored.add(snap(1, [0.2, 0, 0.3, 2 / 7, 0, 0]));
  const a = straight.result();
  const b = restored.result();
  t.same(b.epochs, [0, 1]);
  t.same([b.firstStep, b.lastStep], [a.firstStep, a.lastStep], 'snapshot steps restored');
  for (const name of ['c.w', 'c.b']) {
    t.ok(Buffer.from(a.weights[name].values.buffer).equals(Buffer.from(b.weights[name].values.buffer)), `${name} identical bits`);
  }
  t.same(Array.from(b.masks['c.w'].values), Array.from(mask.values));
  t.throws(() => SnapshotMean.fromState({ arrays: {}, json: { epochs: [0], steps: [3], shapes: { x: [2] }, masks: {} } }), /missing array 'sum\/x'/);
  t.throws(() => SnapshotMean.fromState({ arrays: {}, json: { epochs: [0], shapes: {}, masks: {} } } as never), /'steps' must list one step per snapshot \(1\)/);
});
