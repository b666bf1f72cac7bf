import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { resolveConfig, configHash } from '../../src/config/config';
import { EmbeddedRunQueue } from '../../src/daemon/embedded-run-queue';
import { RunQueueError, type RunRecord, type RunRequest } from '../../src/daemon/run-queue';
import { tempDir } from './client';

const config = resolveConfig({ base: { train: { epochs: 1 } } });
const request = (id: string): RunRequest => ({ id, pipeline: 'train', config, configHash: configHash(config) });

t.test('runs are claimed oldest first, one claim per run, and settled into their final state', async (t) => {
  const file = path.join(tempDir('cigl-queue-'), 'queue.json');
  const queue = EmbeddedRunQueue.open(file);
  const changes: [string, string][] = [];
  queue.changes$.subscribe((r) => changes.push([r.id, r.state]));
  for (const id of ['a', 'b', 'c']) await queue.submit(request(id));
  await t.rejects(queue.submit(request('b')), RunQueueError, 'an id is used once');
  const first = await queue.claim('w1');
  const second = await queue.claim('w2');
  t.equal(first?.id, 'a');
  t.equal(second?.id, 'b');
  t.match(first, { state: 'running', worker: 'w1', attempts: 1 });
  t.match(await queue.settle('a', { kind: 'completed', step: 10 }), { state: 'completed', step: 10 });
  t.match(await queue.settle('b', { kind: 'diverged', error: 'training diverged at step 3', step: 3 }), { state: 'diverged', error: 'training diverged at step 3', step: 3 });
  await t.rejects(queue.settle('b', { kind: 'completed', step: 4 }), /not running/, 'a settled run cannot be settled again');
  t.match(await queue.cancel('c'), { state: 'cancelled' }, 'a queued run is cancelled at once');
  t.equal(await queue.claim('w1'), undefined, 'nothing left to claim');
  t.same(changes.map(([id, state]) => `${id}:${state}`), ['a:queued', 'b:queued', 'c:queued', 'a:running', 'b:running', 'a:completed', 'b:diverged', 'c:cancelled']);
  await queue.close();
});

t.test('state survives reopening; runs left running by a dead daemon are queued again, in their place', async (t) => {
  const file = path.join(tempDir('cigl-queue-'), 'queue.json');
  const before = EmbeddedRunQueue.open(file);
  for (const id of ['old', 'mid', 'new']) await before.submit(request(id));
  await before.claim('dead-daemon');
  t.match(await before.settle('old', { kind: 'interrupted', step: 7 }), { state: 'queued', attempts: 0 }, 'a graceful stop uses up no attempt');
  await before.claim('dead-daemon'); // 'old' again, then the daemon dies (no settle): that attempt counts
  t.equal((await before.get('old'))?.attempts, 1);
  // No close: the process "dies" here; the file is all that is left.

  const after = EmbeddedRunQueue.open(file);
  const runs = await after.list();
  t.same(runs.map((r) => [r.id, r.state, r.interrupted ?? false]), [['old', 'queued', true], ['mid', 'queued', false], ['new', 'queued', false]]);
  t.equal(runs[0].step, 7, 'the last settled step is kept');
  const next = (await after.claim('new-daemon')) as RunRecord;
  t.match(next, { id: 'old', attempts: 2, state: 'running' }, 'the interrupted run is taken first');
  t.match(await after.settle('old', { kind: 'completed', step: 20 }), { state: 'completed', step: 20 });
  t.notOk((await after.get('old'))?.interrupted, 'no longer marked interrupted');
  await after.close();
});

t.test('cancelling a running run flags it for its worker; finished runs are left as they are', async (t) => {
  const queue = EmbeddedRunQueue.open(path.join(tempDir('cigl-queue-'), 'queue.json'));
  await queue.submit(request('r'));
  await queue.claim('w');
  t.match(await queue.cancel('r'), { state: 'running', cancelRequested: true });
  t.match(await queue.settle('r', { kind: 'cancelled', step: 2 }), { state: 'cancelled', step: 2 });
  t.match(await queue.cancel('r'), { state: 'cancelled' });
  t.equal(await queue.cancel('nobody'), undefined);
  await queue.close();
});

t.test('a damaged queue file is an error naming the file and the problem, never silently reset', async (t) => {
  const dir = tempDir('cigl-queue-');
  const file = path.join(dir, 'queue.json');
  fs.writeFileSync(file, '{"format": "cigl-daemon-queue", "version": 1, "runs": [');
  t.throws(() => EmbeddedRunQueue.open(file), new RegExp(`cannot read the daemon queue ${file}`));
  fs.writeFileSync(file, JSON.stringify({ format: 'cigl-daemon-queue', version: 1, runs: [{ ...request('x'), state: 'running', attempts: 1, submittedAt: '' }, { ...request('../y'), state: 'queued', attempts: 0 }] }));
  t.throws(() => EmbeddedRunQueue.open(file), /runs\[1\] has an invalid id "\.\.\/y"/);
  fs.writeFileSync(file, JSON.stringify({ format: 'something-else', version: 1, runs: [] }));
  t.throws(() => EmbeddedRunQueue.open(file), /is not a version 1 cigl-daemon-queue file/);
});
