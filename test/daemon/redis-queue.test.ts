import Redis from 'ioredis';
import t from 'tap';
import { RedisRunQueue } from '../../src/daemon/redis-run-queue';
import type { RunRequest } from '../../src/daemon/run-queue';
import { redisUnavailable, startRedis } from '../helpers/redis-server';

/** The Redis RunQueue on its own (no training): the RunQueue contract, retries, expired locks. */

const skip = redisUnavailable();
const request = (id: string): RunRequest => ({ id, pipeline: 'train', config: { output: { runName: id } } as never, configHash: `hash-${id}` });

t.test('RedisRunQueue: submit, claim, settle; failures retried up to the attempt limit; an expired lock hands the run on', { skip }, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const a = await RedisRunQueue.open({ url: redis.url, name: 'q', attempts: 2, lockDurationMs: 2000, pollMs: 100 });
  const b = await RedisRunQueue.open({ url: redis.url, name: 'q', attempts: 2, lockDurationMs: 2000, pollMs: 100 });
  t.teardown(() => Promise.all([a.close(), b.close()]));

  t.match(await a.submit(request('one')), { id: 'one', state: 'queued', attempts: 0 });
  await t.rejects(b.submit(request('one')), /already exists/);
  await a.submit(request('two'));
  t.same((await b.list()).map((r) => [r.id, r.state]), [['one', 'queued'], ['two', 'queued']]);

  const first = await a.claim('worker-a');
  t.match(first, { id: 'one', state: 'running', worker: 'worker-a', attempts: 1 });
  t.match(await b.get('one'), { state: 'running', worker: 'worker-a' }, 'every client sees the claim');
  t.match(await a.settle('one', { kind: 'completed', step: 7 }), { state: 'completed', step: 7 });

  // A failure is retried (attempts: 2), then the run is failed with its error.
  t.match(await b.claim('worker-b'), { id: 'two', attempts: 1 });
  t.match(await b.settle('two', { kind: 'failed', error: 'boom 1' }), { state: 'queued', error: 'boom 1' });
  t.match(await b.claim('worker-b'), { id: 'two', attempts: 2 });
  t.match(await b.settle('two', { kind: 'failed', error: 'boom 2' }), { state: 'failed', error: 'boom 2' });
  t.equal(await b.claim('worker-b'), undefined, 'nothing left');

  // An interrupted run goes back to wait without using an attempt.
  await a.submit(request('three'));
  await a.claim('worker-a');
  t.match(await a.settle('three', { kind: 'interrupted', step: 3 }), { state: 'queued', interrupted: true, attempts: 0 });

  // A claim whose lock expires (its process froze past the lock; simulated by deleting the lock) is
  // refused at the next renewal: the holder is told, the stalled checker queues the run again, and
  // another worker claims it.
  const lost: string[] = [];
  a.claimLost$!.subscribe((id) => lost.push(id));
  const held = await a.claim('worker-a');
  t.equal(held?.id, 'three');
  const raw = new Redis(redis.url);
  t.teardown(() => raw.disconnect());
  t.equal(await raw.del('bull:q:three:lock'), 1);
  let taken;
  for (let i = 0; i < 200 && !taken; i++) {
    taken = await b.claim('worker-b');
    if (!taken) await new Promise((r) => setTimeout(r, 50));
  }
  t.match(taken, { id: 'three', worker: 'worker-b', attempts: 2 }, 'taken over after the lock expired (the graceful stop before used up no attempt)');
  for (let i = 0; i < 100 && lost.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.same(lost, ['three'], 'the worker that lost the lock learns it');
  await t.rejects(a.settle('three', { kind: 'completed', step: 9 }), /not held by this daemon/);
  t.match(await b.settle('three', { kind: 'completed', step: 20 }), { state: 'completed', step: 20 });

  // A diverged run fails at once, attempts left or not, and says so.
  await a.submit(request('six'));
  t.match(await a.claim('worker-a'), { id: 'six', attempts: 1 });
  t.match(await a.settle('six', { kind: 'diverged', error: 'training diverged at step 4', step: 4 }), { state: 'diverged', error: 'training diverged at step 4' });
  t.match(await b.get('six'), { state: 'diverged' });

  // Cancel: a queued run at once.
  await a.submit(request('four'));
  t.match(await a.cancel('four'), { state: 'cancelled' });
  t.match(await b.get('four'), { state: 'cancelled' });
  await t.rejects(b.submit(request('four')), /already exists/);

  // Cancel: a running run is flagged, and its worker hears of it through the shared events.
  await a.submit(request('five'));
  await a.claim('worker-a');
  const heard = new Promise((resolve) => a.changes$.subscribe((r) => (r.id === 'five' && r.cancelRequested ? resolve(r) : undefined)));
  t.match(await b.cancel('five'), { state: 'running', cancelRequested: true });
  t.match(await heard, { id: 'five', state: 'running', cancelRequested: true }, "the holder's changes$ says so");
  t.match(await a.settle('five', { kind: 'cancelled', step: 2 }), { state: 'cancelled' });
  t.match(await b.get('five'), { state: 'cancelled' });
});

t.test('RedisRunQueue.open names an unreachable URL', { skip }, async (t) => {
  await t.rejects(RedisRunQueue.open({ url: 'redis://127.0.0.1:1' }), /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  await t.rejects(RedisRunQueue.open({ url: 'http://x' }), /scheme must be redis/);
});
