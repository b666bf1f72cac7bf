import t from 'tap';
import { Rng } from '../../src/util/rng';

t.test('same seed, same stream; state round-trips', async (t) => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  t.same(xs, Array.from({ length: 5 }, () => b.nextU32()));
  const saved = a.getState();
  const next = a.nextU32();
  t.equal(Rng.fromState(saved).nextU32(), next);
  t.not(new Rng(43).nextU32(), new Rng(42).nextU32());
});

t.test('derive gives distinct, reproducible streams per key', async (t) => {
  t.equal(Rng.derive(1, 'augment', 0, 3).nextU32(), Rng.derive(1, 'augment', 0, 3).nextU32());
  t.not(Rng.derive(1, 'augment', 0, 3).nextU32(), Rng.derive(1, 'augment', 0, 4).nextU32());
  t.not(Rng.derive(1, 'augment', 1, 3).nextU32(), Rng.derive(1, 'augment', 0, 3).nextU32());
});

t.test('nextInt is in range and roughly uniform; permutation is a permutation', async (t) => {
  const rng = new Rng(7);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100000; i++) counts[rng.nextInt(10)]++;
  for (const c of counts) t.ok(Math.abs(c - 10000) < 600, `bucket count ${c} near 10000`);
  const p = Array.from(rng.permutation(1000)).sort((x: number, y: number) => x - y);
  t.same(p, Array.from({ length: 1000 }, (_, i) => i));
  t.throws(() => rng.nextInt(0), /nextInt/);
  t.throws(() => rng.setState([0, 0, 0, 0]), /not all zero/);
});
