import t from 'tap';
import { lrSchedule } from '../../src/train/lr-schedule';

const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-12;

t.test('linear warm-up then step decay at milestone epochs', async (t) => {
  const lr = lrSchedule({ kind: 'step', baseLr: 0.1, warmupEpochs: 1, milestones: [2, 4], gamma: 0.1 }, 10, 60);
  t.ok(close(lr(0), 0.01), 'first warm-up step: base / 10');
  t.ok(close(lr(4), 0.05));
  t.ok(close(lr(9), 0.1), 'last warm-up step reaches base');
  t.ok(close(lr(19), 0.1));
  t.ok(close(lr(20), 0.01), 'epoch 2: × 0.1');
  t.ok(close(lr(40), 0.001), 'epoch 4: × 0.01');
});

t.test('cosine decay after warm-up ends at finalLr', async (t) => {
  const lr = lrSchedule({ kind: 'cosine', baseLr: 0.2, warmupEpochs: 1, finalLr: 0 }, 10, 110);
  t.ok(close(lr(10), 0.2));
  t.ok(close(lr(60), 0.1), 'half-way: half');
  t.ok(close(lr(110), 0));
  t.ok(lr(30) > lr(31), 'decreasing');
});

t.test('constant, and errors name the field', async (t) => {
  t.equal(lrSchedule({ kind: 'constant', baseLr: 0.3 }, 5, 50)(17), 0.3);
  t.throws(() => lrSchedule({ kind: 'constant', baseLr: 0 }, 5, 50), /lr\.baseLr must be > 0, got 0/);
  t.throws(() => lrSchedule({ kind: 'step', baseLr: 0.1, milestones: [-1], gamma: 0.1 }, 5, 50), /lr\.milestones\[0\]/);
  t.throws(() => lrSchedule({ kind: 'linear', baseLr: 0.1 } as never, 5, 50), /lr\.kind must be .* got 'linear'/);
});
