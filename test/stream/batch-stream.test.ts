import t from 'tap';
import { concatMap, firstValueFrom, lastValueFrom, Subject, take, toArray } from 'rxjs';
import { AugmentPool, type AugmentRunner } from '../../src/augment/pool';
import { runAugmentTask, type AugmentTask } from '../../src/augment/task';
import { withSharedPixels } from '../../src/data/shared-memory';
import type { ImageDataset } from '../../src/data/types';
import type { Batch } from '../../src/stream/batch';
import { batchStream, BatchError, evalStream } from '../../src/stream/batch-stream';
import { epochOrder } from '../../src/stream/epoch-plan';
import { randomDataset } from '../helpers/datasets';

const data: ImageDataset = withSharedPixels(randomDataset(50, { height: 8, width: 8, channels: 3 }, 5, 31));
const stats = { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
const common = { dataset: data, stats, batchSize: 16, seed: 77 };

const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
const sameBatches = (a: Batch[], b: Batch[]) =>
  a.length === b.length &&
  a.every((x, i) => x.epoch === b[i].epoch && x.index === b[i].index && bytes(x.x).equals(bytes(b[i].x)) && x.labels.join() === b[i].labels.join());

/** A real pool seen through a wrapper that records every task and can alter one (to make a worker fail). */
function recording(pool: AugmentRunner, alter?: (task: AugmentTask) => AugmentTask) {
  const log = { started: 0, signals: [] as AbortSignal[], onRun: [] as (() => void)[] };
  const runner: AugmentRunner = {
    block: pool.block,
    run(task, signal) {
      log.started++;
      log.signals.push(signal!);
      log.onRun.forEach((f) => f());
      return pool.run(alter ? alter(task) : task, signal);
    },
  };
  return { runner, log };
}

t.test('batches follow the plan: shuffled per epoch by seed, augmented by (seed, epoch, index), in order', async (t) => {
  const batches = await lastValueFrom(batchStream({ ...common, epochs: 2, workers: 2 }).pipe(toArray()));
  t.same(batches.map((b) => [b.epoch, b.index, b.size]), [[0, 0, 16], [0, 1, 16], [0, 2, 16], [0, 3, 2], [1, 0, 16], [1, 1, 16], [1, 2, 16], [1, 3, 2]]);
  for (const b of batches) {
    const indices = epochOrder(77, b.epoch, 50).slice(b.index * 16, b.index * 16 + b.size);
    const expected = runAugmentTask(data, { seed: 77, epoch: b.epoch, index: b.index, indices, stats, augment: { pad: 4, flip: true } });
    t.ok(bytes(b.x).equals(bytes(expected)), `pixels of (${b.epoch}, ${b.index})`);
    t.same(Array.from(b.labels), Array.from(indices, (i) => data.labels[i]), `labels of (${b.epoch}, ${b.index})`);
    t.same([b.height, b.width, b.channels, b.x.length], [8, 8, 3, b.size * 192]);
  }
  for (const epoch of [0, 1]) {
    const order = Array.from(epochOrder(77, epoch, 50)).sort((a, b) => a - b);
    t.same(order, Array.from({ length: 50 }, (_, i) => i), `epoch ${epoch} visits every image once`);
  }
  t.not(epochOrder(77, 0, 50).join(), epochOrder(77, 1, 50).join(), 'each epoch has its own order');
  t.not(epochOrder(78, 0, 50).join(), epochOrder(77, 0, 50).join(), 'the seed changes the order');
});

t.test('same batches in the same order with 1 or 2 workers; resume from (epoch, index) gives the tail', async (t) => {
  const one = await lastValueFrom(batchStream({ ...common, epochs: 3, workers: 1 }).pipe(toArray()));
  const two = await lastValueFrom(batchStream({ ...common, epochs: 3, workers: 2, prefetch: 6 }).pipe(toArray()));
  t.equal(one.length, 12);
  t.ok(sameBatches(one, two), '1 worker and 2 workers agree batch for batch');
  const resumed = await lastValueFrom(batchStream({ ...common, epochs: 3, workers: 2, start: { epoch: 1, index: 2 } }).pipe(toArray()));
  t.ok(sameBatches(resumed, one.slice(6)), 'resumed run equals the rest of the full run');
  const inline = await lastValueFrom(batchStream({ ...common, epochs: 3, workers: 0 }).pipe(toArray()));
  t.ok(sameBatches(inline, one), 'workers: 0 (main thread) gives the same batches');
  const dropped = await lastValueFrom(batchStream({ ...common, epochs: 1, dropLast: true, workers: 1 }).pipe(toArray()));
  t.same(dropped.map((b) => b.size), [16, 16, 16], 'dropLast drops the short batch');
  const plain = await firstValueFrom(batchStream({ ...common, epochs: 1, workers: 1, augment: { pad: 0, flip: false } }));
  const indices = epochOrder(77, 0, 50).slice(0, 16);
  const normalised = runAugmentTask(data, { seed: 77, epoch: 0, index: 0, indices, stats, augment: null });
  t.ok(bytes(plain.x).equals(bytes(normalised)), 'pad 0 without flip is plain normalisation');
  const off = await firstValueFrom(batchStream({ ...common, epochs: 1, workers: 0, augment: false }));
  t.ok(bytes(off.x).equals(bytes(normalised)), 'augment: false normalises only, still shuffled');
});

t.test('prefetch bound holds under a slow synchronous consumer', async (t) => {
  const pool = new AugmentPool(data, { workers: 2 });
  t.teardown(() => pool.destroy());
  const { runner, log } = recording(pool);
  let consumed = 0;
  let worst = 0;
  log.onRun.push(() => (worst = Math.max(worst, log.started - consumed)));
  const prefetch = 3;
  const seen: string[] = [];
  await new Promise<void>((resolve, reject) =>
    batchStream({ ...common, epochs: 4, pool: runner, prefetch }).subscribe({
      next: (b) => {
        const until = process.hrtime.bigint() + 2_000_000n;
        while (process.hrtime.bigint() < until); // slow, synchronous work
        seen.push(`${b.epoch}/${b.index}`);
        consumed++;
      },
      complete: resolve,
      error: reject,
    }),
  );
  t.equal(seen.length, 16);
  t.ok(worst <= prefetch, `at most ${prefetch} batches produced but not consumed (worst ${worst})`);
  t.equal(worst, prefetch, 'and the prefetch is used');
});

t.test('prefetch bound holds under a slow asynchronous consumer that acknowledges', async (t) => {
  const pool = new AugmentPool(data, { workers: 2 });
  t.teardown(() => pool.destroy());
  const { runner, log } = recording(pool);
  const acks = new Subject<void>();
  let acked = 0;
  let worst = 0;
  log.onRun.push(() => (worst = Math.max(worst, log.started - acked)));
  const prefetch = 2;
  const order = await lastValueFrom(
    batchStream({ ...common, epochs: 5, pool: runner, prefetch, consumed: acks }).pipe(
      concatMap(async (b) => {
        await new Promise((r) => setTimeout(r, 3)); // a slow training step
        acked++;
        acks.next();
        return `${b.epoch}/${b.index}`;
      }),
      toArray(),
    ),
  );
  t.equal(order.length, 20);
  t.same(order.slice(0, 5), ['0/0', '0/1', '0/2', '0/3', '1/0'], 'ordered delivery');
  t.ok(worst <= prefetch, `at most ${prefetch} batches unacknowledged (worst ${worst})`);
  t.equal(worst, prefetch);
});

t.test('a worker error becomes a stream error naming the batch; earlier batches arrive first', async (t) => {
  const pool = new AugmentPool(data, { workers: 2 });
  t.teardown(() => pool.destroy());
  const { runner } = recording(pool, (task) =>
    task.epoch === 1 && task.index === 2 ? { ...task, indices: Int32Array.of(0, 999) } : task,
  );
  const seen: string[] = [];
  const error = await new Promise<unknown>((resolve) =>
    batchStream({ ...common, epochs: 3, pool: runner, prefetch: 4 }).subscribe({
      next: (b) => seen.push(`${b.epoch}/${b.index}`),
      error: resolve,
      complete: () => resolve(undefined),
    }),
  );
  t.type(error, BatchError);
  t.match(error, { epoch: 1, index: 2, message: /augmentation failed for batch \(epoch 1, index 2\): image index 999 out of range \[0, 50\)/ });
  t.same(seen, ['0/0', '0/1', '0/2', '0/3', '1/0', '1/1']);
  const after = await firstValueFrom(batchStream({ ...common, epochs: 1, pool }));
  t.equal(after.index, 0, 'a shared pool keeps working after a failed stream');
});

t.test('unsubscribing cancels queued work and starts nothing more', async (t) => {
  const pool = new AugmentPool(data, { workers: 1 });
  t.teardown(() => pool.destroy());
  const { runner, log } = recording(pool);
  const got = await lastValueFrom(batchStream({ ...common, epochs: Infinity, pool: runner, prefetch: 5 }).pipe(take(2), toArray()));
  t.same(got.map((b) => b.index), [0, 1]);
  const startedAtEnd = log.started;
  t.ok(log.signals.slice(2).length > 0, 'work was queued beyond the batches taken');
  t.ok(log.signals.every((s) => s.aborted), 'every outstanding task was cancelled');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(log.started, startedAtEnd, 'no task started after unsubscribing');
  const again = await firstValueFrom(batchStream({ ...common, epochs: 1, pool }));
  t.equal(again.size, 16, 'the shared pool was left running');
});

t.test('evaluation stream: every image once, in order, normalised only', async (t) => {
  const batches = await lastValueFrom(evalStream({ dataset: data, stats, batchSize: 20, workers: 1, epoch: 7 }).pipe(toArray()));
  t.same(batches.map((b) => [b.epoch, b.index, b.size]), [[7, 0, 20], [7, 1, 20], [7, 2, 10]]);
  const all = Int32Array.from({ length: 50 }, (_, i) => i);
  const expected = runAugmentTask(data, { seed: 0, epoch: 0, index: 0, indices: all, stats, augment: null });
  t.ok(Buffer.concat(batches.map((b) => bytes(b.x))).equals(bytes(expected)), 'pixels equal plain normalisation in data set order');
  t.same(batches.flatMap((b) => Array.from(b.labels)), Array.from(data.labels));
});

t.test('bad options are clear errors', async (t) => {
  t.throws(() => batchStream({ ...common, epochs: 1, start: { epoch: 0, index: 4 } }), { message: /start index must be an integer in \[0, 4\), got 4/ });
  t.throws(() => batchStream({ ...common, epochs: 1, batchSize: 0 }), { message: /batchSize must be an integer ≥ 1, got 0/ });
  t.throws(() => batchStream({ ...common, epochs: 1, prefetch: 0 }), { message: /prefetch must be an integer ≥ 1, got 0/ });
  t.throws(() => batchStream({ ...common, epochs: 1, stats: { mean: [0], std: [1] } }), { message: /1 means and 1 stds for 3-channel images/ });
  const other = withSharedPixels(randomDataset(50, { height: 8, width: 8, channels: 3 }, 5, 32));
  const pool = new AugmentPool(other, { workers: 1 });
  t.teardown(() => pool.destroy());
  t.throws(() => batchStream({ ...common, epochs: 1, pool }), { message: /augment pool holds other images than random\(50\)/ });
});
