import t from 'tap';
import { AugmentPool } from '../../src/augment/pool';
import { runAugmentTask, type AugmentTask } from '../../src/augment/task';
import { isShared, withSharedPixels } from '../../src/data/shared-memory';
import { randomDataset } from '../helpers/datasets';

t.test('pool workers compute what the pure function computes, on pixels shared at creation', async (t) => {
  const data = withSharedPixels(randomDataset(50, undefined, 10, 21));
  const pool = new AugmentPool(data, { workers: 2 });
  t.teardown(() => pool.destroy());
  t.equal(pool.block.images, data.images, 'already-shared pixels are used as they are, not copied');
  const stats = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
  const tasks: AugmentTask[] = [0, 1, 2, 3].map((index) => ({
    seed: 9,
    epoch: 2,
    index,
    indices: Int32Array.from({ length: 12 }, (_, i) => (i * 7 + index) % 50),
    stats,
    augment: index === 3 ? null : { pad: 4, flip: true },
  }));
  const results = await Promise.all(tasks.map((task) => pool.run(task)));
  results.forEach((x, i) => {
    t.ok(x instanceof Float32Array, 'a Float32Array comes back');
    t.same(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(runAugmentTask(data, tasks[i]).buffer), `task ${i}`);
  });
  await pool.destroy();
  await t.rejects(pool.run(tasks[0]), { message: /augment pool already destroyed/ });
});

t.test('plain-memory pixels are copied into shared memory once', async (t) => {
  const data = randomDataset(3, undefined, 2, 22);
  t.notOk(isShared(data.images));
  const pool = new AugmentPool(data, { workers: 1 });
  t.teardown(() => pool.destroy());
  t.ok(isShared(pool.block.images));
  t.same(Buffer.from(pool.block.images), Buffer.from(data.images));
  t.throws(() => new AugmentPool(data, { workers: 0 }), { message: /workers must be an integer ≥ 1, got 0/ });
});
