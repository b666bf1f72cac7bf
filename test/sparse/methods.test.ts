import t from 'tap';
import { createSparseMethod } from '../../src/sparse/methods';
import { Rng } from '../../src/util/rng';

t.test('each method differs from its parent only where it should', async (t) => {
  const flags = (name: Parameters<typeof createSparseMethod>[0]) => {
    const m = createSparseMethod(name, { randomMaskRate: 0.1 });
    return [m.name, m.sparse, m.updatesMasks, m.randomMaskRate];
  };
  t.same(flags('dense'), ['dense', false, false, 0]);
  t.same(flags('static'), ['static', true, false, 0]);
  t.same(flags('set'), ['set', true, true, 0]);
  t.same(flags('rigl'), ['rigl', true, true, 0]);
  t.same(flags('cigl'), ['cigl', true, true, 0.1]);
  t.equal(createSparseMethod('cigl').randomMaskRate, 0.01, "CigL's default p is the released code's 1%");
  t.throws(() => createSparseMethod('snip' as never), /sparsity\.method must be one of dense, static, set, rigl, cigl, got 'snip'/);
  t.throws(() => createSparseMethod('cigl', { randomMaskRate: 1 }), /randomMaskRate \(CigL p\) must be in \[0, 1\), got 1/);
});

t.test('grow scores: RigL and CigL by |dense gradient|, SET at random from its stream', async (t) => {
  const ctx = (seed: number) => ({ layer: 'l', step: 1, weights: new Float32Array(4), denseGradient: Float32Array.from([-3, 1, 0, 2]), rng: new Rng(seed) });
  t.same(Array.from(createSparseMethod('rigl').growScore(ctx(1))), [3, 1, 0, 2]);
  t.same(Array.from(createSparseMethod('cigl').growScore(ctx(1))), [3, 1, 0, 2]);
  const set = createSparseMethod('set');
  t.same(set.growScore(ctx(1)), set.growScore(ctx(1)), 'SET: same stream, same scores');
  t.notSame(set.growScore(ctx(1)), set.growScore(ctx(2)), 'SET: another stream, other scores');
  t.throws(() => createSparseMethod('dense').growScore(ctx(1)), /dense method never grows/);
});
