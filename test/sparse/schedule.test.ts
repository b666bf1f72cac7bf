import t from 'tap';
import { DEFAULT_MASK_UPDATE_SCHEDULE, maskUpdateSchedule } from '../../src/sparse/schedule';

t.test('drop fraction follows f0 · ½(1 + cos(π t / T_end)) and is 0 from T_end on', async (t) => {
  const s = maskUpdateSchedule(DEFAULT_MASK_UPDATE_SCHEDULE, 10000);
  t.equal(s.endStep, 7500, 'T_end = 75% of the steps');
  t.equal(s.dropFractionAt(0), 0.3);
  t.ok(Math.abs(s.dropFractionAt(3750) - 0.15) < 1e-12, 'half-way: f0 / 2');
  t.ok(Math.abs(s.dropFractionAt(1875) - 0.15 * (1 + Math.SQRT1_2)) < 1e-12, 'quarter-way: f0/2 (1 + cos π/4)');
  t.ok(Math.abs(s.dropFractionAt(7500)) < 1e-12, 'zero at T_end');
  t.equal(s.dropFractionAt(9000), s.dropFractionAt(7500), 'stays at the T_end value afterwards');
  let previous = Infinity;
  for (let step = 0; step <= 7500; step += 100) {
    const f = s.dropFractionAt(step);
    t.ok(f <= previous, `non-increasing at ${step}`);
    previous = f;
  }
});

t.test('updates every ΔT steps, from ΔT, strictly before T_end', async (t) => {
  const s = maskUpdateSchedule({ updateEvery: 4, dropFraction: 0.3, endFraction: 0.5 }, 40);
  const steps = Array.from({ length: 40 }, (_, i) => i).filter((i) => s.isUpdateStep(i));
  t.same(steps, [4, 8, 12, 16]);
});

t.test('bad schedule values are named', async (t) => {
  t.throws(() => maskUpdateSchedule({ updateEvery: 0, dropFraction: 0.3, endFraction: 0.75 }, 10), /sparsity\.updateEvery must be a positive integer, got 0/);
  t.throws(() => maskUpdateSchedule({ updateEvery: 1, dropFraction: 1.3, endFraction: 0.75 }, 10), /sparsity\.dropFraction must be in \[0, 1\], got 1\.3/);
  t.throws(() => maskUpdateSchedule({ updateEvery: 1, dropFraction: 0.3, endFraction: -1 }, 10), /sparsity\.endFraction/);
});
