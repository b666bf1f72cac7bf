import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { listCheckpoints } from '../../src/sinks/checkpoint';
import { fakeConfig, request, startTestDaemon } from './client';
import { testRunner } from './fake-train-job';

t.test('cancel: a queued run at once, a running run after its current step (with a checkpoint)', async (t) => {
  const d = await startTestDaemon();
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('long', 100))).status, 201);
  t.equal((await d.submit(fakeConfig('waiting', 1))).status, 201);
  await d.waitForRun('long', (r) => r.state === 'running' && r.step >= 3);
  t.equal((await request(d.url, '/runs/waiting')).json().state, 'queued', 'one training at a time by default');

  const auth = { authorization: `Bearer ${d.token}` };
  const cancelQueued = await request(d.url, '/runs/waiting/cancel', { method: 'POST', headers: auth });
  t.equal(cancelQueued.status, 202);
  t.equal(cancelQueued.json().state, 'cancelled', 'a queued run is cancelled at once');
  t.notOk(fs.existsSync(path.join(d.daemon.home.runsDir, 'waiting')), 'and never started');

  const cancelRunning = await request(d.url, '/runs/long/cancel', { method: 'POST', headers: auth });
  t.equal(cancelRunning.status, 202);
  t.equal(cancelRunning.json().state, 'running');
  t.equal(cancelRunning.json().cancelRequested, true);
  const cancelled = await d.waitForRun('long', (r) => r.state === 'cancelled');
  t.ok(cancelled.step > 0 && cancelled.step < 1000, `stopped part-way, at step ${cancelled.step}`);
  const checkpoints = listCheckpoints(path.join(d.daemon.home.runsDir, 'long', 'checkpoints'));
  t.equal(checkpoints[0]?.step, cancelled.step, 'the job checkpointed where it stopped');
  t.notOk(fs.existsSync(path.join(d.daemon.home.runsDir, 'long', 'summary.json')), 'a cancelled run has no summary');

  const again = await request(d.url, '/runs/long/cancel', { method: 'POST', headers: auth });
  t.equal(again.status, 409, 'a finished run cannot be cancelled');
  t.equal((await request(d.url, '/runs/nobody/cancel', { method: 'POST', headers: auth })).status, 404);

  t.equal((await d.submit(fakeConfig('after', 1))).status, 201);
  await d.waitForRun('after', (r) => r.state === 'completed');
  t.pass('the queue goes on after cancellations');
});

t.test('concurrency: at most N runs train at once, and all finish', async (t) => {
  const d = await startTestDaemon({ concurrency: 2 });
  t.teardown(() => d.stop());
  let running = 0;
  let most = 0;
  const states = new Map<string, string>();
  const sub = d.daemon.queue.changes$.subscribe((r) => {
    states.set(r.id, r.state);
    running = [...states.values()].filter((s) => s === 'running').length;
    most = Math.max(most, running);
  });
  t.teardown(() => sub.unsubscribe());
  for (const name of ['c1', 'c2', 'c3', 'c4']) t.equal((await d.submit(fakeConfig(name, 1))).status, 201);
  for (const name of ['c1', 'c2', 'c3', 'c4']) await d.waitForRun(name, (r) => r.state === 'completed');
  t.equal(most, 2, 'two at a time, never more');
});

t.test('a run whose pipeline throws is marked failed with the error, and the next run starts', async (t) => {
  const d = await startTestDaemon({
    pipelines: { train: { runner: testRunner('failingTrainJob', 'out of cheese') } },
  });
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('broken', 1))).status, 201);
  t.equal((await d.submit(fakeConfig('broken-too', 1))).status, 201);
  const failed = await d.waitForRun('broken', (r) => r.state === 'failed');
  t.equal(failed.error, 'out of cheese');
  t.equal((await d.waitForRun('broken-too', (r) => r.state === 'failed')).error, 'out of cheese');
});
