import t from 'tap';
import { countActive, randomMask } from '../../src/sparse/masks';
import { pruneAndGrow } from '../../src/sparse/prune-grow';
import { randomWeightMultiplier } from '../../src/sparse/random-mask';
import { Rng } from '../../src/util/rng';

t.test('drops the k smallest |w| among active, grows the k best scores among inactive, count unchanged', async (t) => {
  //              0    1     2    3     4    5    6    7
  const mask = Uint8Array.from([1, 1, 1, 1, 0, 0, 0, 0]);
  const w = Float32Array.from([0.5, -0.1, 0.3, -0.05, 0, 0, 0, 0]);
  const score = Float32Array.from([9, 9, 9, 9, 0.2, 0.7, 0.1, 0.9]);
  const { pruned, grown, reselected } = pruneAndGrow(mask, w, score, 0.5, 'x');
  // k = ⌊0.5 · 4⌋ = 2 smallest |w|: positions 3 (0.05) and 1 (0.1). After the drop they (score 9) are the
  // best candidates: just-dropped positions compete for growth (reference semantics) and come back.
  t.same(Array.from(reselected), [1, 3], 'dropped and regrown at once: reselected');
  t.same([Array.from(pruned), Array.from(grown)], [[], []], 'the mask did not change: nothing pruned or grown');
  t.same(Array.from(mask), [1, 1, 1, 1, 0, 0, 0, 0]);
});

t.test('a partly reselected drop: pruned and grown are the net change', async (t) => {
  const mask = Uint8Array.from([1, 1, 1, 1, 0, 0, 0, 0]);
  const w = Float32Array.from([0.5, -0.1, 0.3, -0.05, 0, 0, 0, 0]);
  const score = Float32Array.from([0, 0, 0, 5, 0.2, 0.7, 0.1, 0.9]);
  const { pruned, grown, reselected } = pruneAndGrow(mask, w, score, 0.5, 'x');
  t.same(Array.from(reselected), [3], 'position 3 was dropped (|w| 0.05) and has the best score');
  t.same(Array.from(pruned), [1]);
  t.same(Array.from(grown), [7], 'the other growth goes to the best previously inactive position');
  t.same(Array.from(mask), [1, 0, 1, 1, 0, 0, 0, 1]);
});

t.test('grows the best inactive positions when pruned ones score low; k = ⌊f · active⌋', async (t) => {
  const mask = Uint8Array.from([1, 1, 1, 1, 0, 0, 0, 0]);
  const w = Float32Array.from([0.5, -0.1, 0.3, -0.05, 0, 0, 0, 0]);
  const score = Float32Array.from([0, 0, 0, 0, 0.2, 0.7, 0.1, 0.9]);
  const { pruned, grown } = pruneAndGrow(mask, w, score, 0.3, 'x');
  t.same(Array.from(pruned), [3], 'k = ⌊0.3 · 4⌋ = 1');
  t.same(Array.from(grown), [7]);
  t.same(Array.from(mask), [1, 1, 1, 0, 0, 0, 0, 1]);
});

t.test('ties: lower positions are dropped and grown first', async (t) => {
  const mask = Uint8Array.from([0, 1, 1, 1, 0, 0]);
  const w = Float32Array.from([0, 0.2, -0.2, 0.2, 0, 0]);
  const score = Float32Array.from([1, 0, 0, 0, 1, 1]);
  const { pruned, grown } = pruneAndGrow(mask, w, score, 0.67, 'x');
  t.same(Array.from(pruned), [1, 2]);
  t.same(Array.from(grown), [0, 4]);
});

t.test('exact active count over many random updates; a dense layer is left alone', async (t) => {
  const rng = new Rng(11);
  const size = 500;
  const mask = randomMask(size, 73, rng);
  for (let round = 0; round < 50; round++) {
    const w = Float32Array.from({ length: size }, (_, i) => (mask[i] ? rng.nextNormal() : 0));
    const score = Float32Array.from({ length: size }, () => Math.abs(rng.nextNormal()));
    const before = mask.slice();
    const { pruned, grown, reselected } = pruneAndGrow(mask, w, score, 0.3 * rng.nextFloat(), 'x');
    t.equal(pruned.length, grown.length);
    const changed = [...mask.keys()].filter((i) => mask[i] !== before[i]);
    const reported = [...pruned, ...grown].sort((a, b) => a - b);
    if (changed.join() !== reported.join()) t.fail(`round ${round}: pruned ∪ grown ${reported} is not the mask's change ${changed}`);
    if (![...reselected].every((i) => before[i] === 1 && mask[i] === 1)) t.fail(`round ${round}: a reselected position is not active before and after`);
    if (countActive(mask) !== 73) t.fail(`round ${round}: ${countActive(mask)} active`);
  }
  t.equal(countActive(mask), 73);
  const dense = new Uint8Array(10).fill(1);
  t.same(pruneAndGrow(dense, new Float32Array(10).fill(1), new Float32Array(10), 0.3, 'd').pruned.length, 0);
  t.throws(() => pruneAndGrow(Uint8Array.from([1, 1, 0, 0]), Float32Array.from([NaN, 1, 0, 0]), new Float32Array(4), 0.5, 'conv2.w'), /conv2\.w: weight 0 is NaN/);
});

t.test("CigL's random mask keeps ≈ (1 − p) of the active weights (5σ) and scales them by 1/(1 − p)", async (t) => {
  const size = 200000;
  const mask = randomMask(size, 60000, new Rng(5));
  for (const p of [0.01, 0.1, 0.5]) {
    const m = randomWeightMultiplier(mask, p, Rng.derive(5, 'z', p));
    let kept = 0;
    let wrong = 0;
    const scale = Math.fround(1 / (1 - p));
    for (let i = 0; i < size; i++) {
      if (mask[i] === 0 && m[i] !== 0) wrong++;
      if (m[i] !== 0 && m[i] !== scale) wrong++;
      if (m[i] !== 0) kept++;
    }
    t.equal(wrong, 0, `p=${p}: inactive stay 0, kept weights are exactly 1/(1−p) = ${scale}`);
    const n = 60000;
    const sigma = Math.sqrt(n * p * (1 - p));
    t.ok(Math.abs(kept - n * (1 - p)) < 5 * sigma, `p=${p}: kept ${kept} of ${n}, expected ${n * (1 - p)} ± ${(5 * sigma).toFixed(0)} (5σ)`);
  }
  // (Buffers, not t.same: tap's deep comparison of 200k-element arrays takes minutes.)
  const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  t.ok(bytes(randomWeightMultiplier(mask, 0, new Rng(1))).equals(bytes(Float32Array.from(mask))), 'p = 0 gives M');
  t.notOk(bytes(randomWeightMultiplier(mask, 0.1, Rng.derive(1, 'randomMask', 3))).equals(bytes(randomWeightMultiplier(mask, 0.1, Rng.derive(1, 'randomMask', 4)))), 'a fresh Z per step');
});
