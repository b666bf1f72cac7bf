import t from 'tap';
import { daemonPipelines } from '../../src/cli/commands/daemon';
import { fakeConfig, postJson, realJobWorkspace, request, startTestDaemon } from './client';
import { fakeRunner, testRunner } from './fake-train-job';

/** Runs train in trainer threads of their own (daemon/run-trainer.ts): what a thread's failure does, and does not do. */

t.test("a trainer thread that crashes (an uncaught exception, process.exit) fails its run with the error; the daemon goes on", async (t) => {
  const d = await startTestDaemon({
    pipelines: {
      train: { runner: fakeRunner() },
      throws: { runner: testRunner('crashingTrainJob', 'throw') },
      exits: { runner: testRunner('crashingTrainJob', 'exit') },
    },
  });
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('blown', 1), 'throws')).status, 201);
  t.equal((await d.submit(fakeConfig('exited', 1), 'exits')).status, 201);
  t.equal((await d.submit(fakeConfig('fine', 1))).status, 201);
  t.match((await d.waitForRun('blown', (r) => r.state === 'failed')).error, /^the run's trainer thread crashed: the trainer blew up$/);
  t.match((await d.waitForRun('exited', (r) => r.state === 'failed')).error, /^the run's trainer thread exited \(code 7\) before the run ended$/);
  t.equal((await d.waitForRun('fine', (r) => r.state === 'completed')).step, 10, 'the next run trains to its end');
  t.equal((await request(d.url, '/queue')).status, 200, 'and the daemon serves on');
});

t.test('a run that diverges (the real job, lr 1e6) ends in state "diverged", with the step, loss and learning rate, and is not retried', async (t) => {
  const ws = realJobWorkspace();
  t.teardown(ws.cleanup);
  const d = await startTestDaemon({ pipelines: daemonPipelines(), dataRoots: [ws.dataRoot] });
  t.teardown(() => d.stop());
  const config = ws.config('wild', 5) as { optimiser: Record<string, unknown> };
  const res = await postJson(d.url, '/runs', { pipeline: 'rigl', config: { ...config, optimiser: { ...config.optimiser, lr: 1e6 } } }, d.token);
  t.equal(res.status, 201, res.text);
  const run = await d.waitForRun('wild', (r) => r.state === 'diverged');
  t.match(run.error, /^training diverged at step (\d+): the loss is not finite \(loss NaN, learning rate 1000000\); lower optimiser\.lr \(e\.g\. 100000\) or warm it up \(optimiser\.warmupEpochs\)$/);
  t.equal(run.step, Number(/at step (\d+)/.exec(run.error)![1]), 'its step is the one that diverged');
  t.ok(run.step < 5, `within the first epoch (step ${run.step} of 5 per epoch)`);
  t.equal(run.attempts, 1, 'tried once');
  t.match((await request(d.url, '/metrics')).text, /^cigl_runs\{state="diverged"\} 1$/m);
});
