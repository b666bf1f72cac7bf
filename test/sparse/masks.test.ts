import t from 'tap';
import { applyMask, countActive, initialMasks, maskFromArray, randomMask } from '../../src/sparse/masks';
import { Rng } from '../../src/util/rng';

t.test('random masks have exactly the requested active count and depend only on (seed, layer)', async (t) => {
  for (const [size, active] of [[100, 0], [100, 1], [100, 37], [1000, 999], [50, 50]]) {
    t.equal(countActive(randomMask(size, active, new Rng(size + active))), active, `${active} of ${size}`);
  }
  const layers = [
    { name: 'a.w', shape: [10, 10], size: 100, active: 30, density: 0.3 },
    { name: 'b.w', shape: [10, 10], size: 100, active: 30, density: 0.3 },
  ];
  const m1 = initialMasks(layers, 7);
  const m2 = initialMasks(layers, 7);
  const m3 = initialMasks(layers, 8);
  t.same(m1.get('a.w'), m2.get('a.w'), 'same seed, same mask');
  t.notSame(m1.get('a.w'), m1.get('b.w'), 'each layer has its own stream');
  t.notSame(m1.get('a.w'), m3.get('a.w'), 'another seed gives another mask');
  t.throws(() => randomMask(10, 11, new Rng(1)), /active count 11 must be an integer in \[0, 10\]/);
});

t.test('random masks are uniform over positions (each position active ≈ density of the time)', async (t) => {
  const size = 20;
  const hits = new Float64Array(size);
  const trials = 4000;
  const rng = new Rng(3);
  for (let i = 0; i < trials; i++) randomMask(size, 5, rng).forEach((v, j) => (hits[j] += v));
  const p = 5 / size;
  const sigma = Math.sqrt(trials * p * (1 - p));
  for (let j = 0; j < size; j++) t.ok(Math.abs(hits[j] - trials * p) < 5 * sigma, `position ${j}: ${hits[j]} ≈ ${trials * p} (5σ = ${(5 * sigma).toFixed(1)})`);
});

t.test('applyMask zeroes exactly the inactive positions; maskFromArray checks shape and values', async (t) => {
  const values = Float32Array.from([1, -2, 3, -4]);
  t.same(Array.from(applyMask(values, Uint8Array.from([1, 0, 0, 1]))), [1, 0, 0, -4]);
  t.same(maskFromArray({ shape: [2, 2], values: Float32Array.from([0, 1, 1, 0]) }, [2, 2], 'm'), Uint8Array.from([0, 1, 1, 0]));
  t.throws(() => maskFromArray({ shape: [4], values: new Float32Array(4) }, [2, 2], 'ckpt mask/x'), /ckpt mask\/x: shape \[4\] does not match \[2, 2\]/);
  t.throws(() => maskFromArray({ shape: [2], values: Float32Array.from([1, 0.5]) }, [2], 'ckpt mask/x'), /value 0\.5 at index 1 is not 0 or 1/);
});
