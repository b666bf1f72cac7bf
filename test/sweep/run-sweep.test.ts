import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { configHash, type RunConfig } from '../../src/config/config';
import type { TrainJob } from '../../src/cli/wiring';
import { prepareRunDir } from '../../src/sinks/run-dir';
import { writeSummary } from '../../src/sinks/summary';
import { readSweepRecord } from '../../src/sweep/record';
import { runSweep, trainRunOne } from '../../src/sweep/run-sweep';
import { fakeRunOne, fakeSummary, readJson, sweepConfigs, sweepJob, type Numbers } from './fake-sweep';

const numbers: Numbers = (c) => ({ accuracy: 0.5 + c.seed / 100, ece15: 0.02 + c.seed / 1000, ece10: 0.018, wallTimeMs: 1000 });
const specs = [
  { method: 'rigl', density: 0.1, seed: 0 },
  { method: 'rigl', density: 0.1, seed: 1 },
  { method: 'cigl', density: 0.1, seed: 0 },
];

t.test('runs every config in order and writes the sweep outputs after each run', async (t) => {
  const dir = t.testdir();
  const runs = sweepConfigs(dir, specs);
  const calls: { config: RunConfig; resume: boolean }[] = [];
  const seenBefore: string[][] = [];
  const runOne = fakeRunOne(numbers, calls, {
    before: (_config, index) => {
      // What the sweep had written when run `index` starts: the earlier runs completed, this one running.
      const record = readSweepRecord(dir);
      seenBefore.push(record.runs.map((r) => r.state));
      if (index > 0) t.ok(fs.existsSync(path.join(dir, 'comparison.md')), `comparison written before run ${index}`);
    },
  });
  const { job, io } = sweepJob(dir, runs, undefined, 'cigl sweep --seeds 0,1');
  const outcome = await runSweep(job, runOne);

  t.same(calls.map((c) => c.config.output.runName), ['rigl-d0.1-s0', 'rigl-d0.1-s1', 'cigl-d0.1-s0']);
  t.same(calls.map((c) => c.resume), [false, false, false]);
  t.same(seenBefore, [
    ['running', 'pending', 'pending'],
    ['completed', 'running', 'pending'],
    ['completed', 'completed', 'running'],
  ]);
  t.equal(outcome.status, 'completed');
  t.same(outcome.failures, []);
  t.same(outcome.summaries.map((s) => s.runName), ['rigl-d0.1-s0', 'rigl-d0.1-s1', 'cigl-d0.1-s0']);
  const record = readJson(path.join(dir, 'sweep.json'));
  t.equal(record.status, 'completed');
  t.equal(record.command, 'cigl sweep --seeds 0,1');
  t.same(record.runs.map((r: any) => [r.runName, r.label, r.state, r.configHash]), runs.map((c) => [c.output.runName, c.sparse.method, 'completed', configHash(c)]));
  t.equal(record.runs[2].config.sparse.method, 'cigl', 'the resolved config is recorded');
  for (const file of ['comparison.md', 'comparison.arrow', 'runs.arrow', 'ece-vs-sparsity.svg', 'ece-vs-sparsity.png']) t.ok(fs.existsSync(path.join(dir, file)), file);
  t.notOk(fs.readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temporary files left');
  t.match(io.stderr.text, /sweep: run 1\/3 rigl-d0\.1-s0\n/);
});

t.test('a re-invoked sweep reuses finished runs, resumes a started one, and refuses a foreign summary', async (t) => {
  const dir = t.testdir();
  const runs = sweepConfigs(dir, [...specs, { method: 'cigl', density: 0.05, seed: 0 }]);
  // First invocation: finished runs 0 and 1 only (the sweep was stopped).
  const stopper = new AbortController();
  await runSweep(sweepJob(dir, runs, stopper.signal).job, fakeRunOne(numbers, [], { before: (_c, i) => void (i === 1 && stopper.abort()) }));
  t.same(readSweepRecord(dir).runs.map((r) => r.state), ['completed', 'completed', 'pending', 'pending']);
  // Run 2 was started and killed (directory without summary); run 3 holds a summary of another config.
  prepareRunDir(runs[2]);
  const foreign = sweepConfigs(dir, [{ method: 'cigl', density: 0.05, seed: 0, set: { 'train.epochs': '7' } }])[0];
  prepareRunDir(runs[3]);
  writeSummary(path.join(dir, 'cigl-d0.05-s0', 'summary.json'), fakeSummary(foreign, numbers(foreign)));

  const calls: { config: RunConfig; resume: boolean }[] = [];
  const { job, io } = sweepJob(dir, runs);
  const seenBefore: string[][] = [];
  const outcome = await runSweep(job, fakeRunOne(numbers, calls, { before: () => void seenBefore.push(readSweepRecord(dir).runs.map((r) => r.state)) }));
  t.same(calls.map((c) => [c.config.output.runName, c.resume]), [['cigl-d0.1-s0', true]], 'only the started run trains, resumed');
  t.same(seenBefore, [['completed', 'completed', 'running', 'pending']], 'while it trains, sweep.json shows the reused runs completed');
  t.equal(outcome.status, 'completed');
  t.same(outcome.summaries.map((s) => s.runName), ['rigl-d0.1-s0', 'rigl-d0.1-s1', 'cigl-d0.1-s0'], 'reused summaries are in the outcome');
  t.equal(outcome.failures?.length, 1);
  t.equal(outcome.failures![0].runName, 'cigl-d0.05-s0');
  t.match(outcome.failures![0].error, /is a finished run of another configuration \(hash [0-9a-f]{12}, this run's is [0-9a-f]{12}\)/);
  const record = readSweepRecord(dir);
  t.same(record.runs.map((r) => [r.state, r.reused ?? false]), [['completed', true], ['completed', true], ['completed', false], ['failed', false]]);
  t.match(io.stderr.text, /rigl-d0\.1-s0: finished earlier, summary reused/);
  t.match(io.stderr.text, /run 3\/4 cigl-d0\.1-s0 \(resuming\)/);
});

t.test('stop: the current run finishes, the rest wait; a run that stops itself stops the sweep', async (t) => {
  const dir = t.testdir();
  const runs = sweepConfigs(dir, specs);
  const stopper = new AbortController();
  const calls: { config: RunConfig; resume: boolean }[] = [];
  const outcome = await runSweep(sweepJob(dir, runs, stopper.signal).job, fakeRunOne(numbers, calls, { before: (_c, i) => void (i === 0 && stopper.abort()) }));
  t.equal(calls.length, 1, 'no run starts after the stop');
  t.equal(outcome.status, 'stopped');
  t.same(outcome.summaries.map((s) => s.runName), ['rigl-d0.1-s0'], 'the current run finished');
  t.equal(readSweepRecord(dir).status, 'stopped');

  const dir2 = t.testdir();
  const runs2 = sweepConfigs(dir2, specs);
  const calls2: { config: RunConfig; resume: boolean }[] = [];
  const stopped = await runSweep(
    sweepJob(dir2, runs2).job,
    fakeRunOne(numbers, calls2, { before: (_c, i) => (i === 1 ? { status: 'stopped', step: 12 } : undefined) }),
  );
  t.equal(stopped.status, 'stopped');
  t.equal(calls2.length, 2);
  t.same(readSweepRecord(dir2).runs.map((r) => r.state), ['completed', 'stopped', 'pending']);
  // Continuing resumes the stopped run and runs the last one.
  const calls3: { config: RunConfig; resume: boolean }[] = [];
  const resumed = await runSweep(sweepJob(dir2, runs2).job, fakeRunOne(numbers, calls3));
  t.same(calls3.map((c) => [c.config.output.runName, c.resume]), [['rigl-d0.1-s1', true], ['cigl-d0.1-s0', false]]);
  t.equal(resumed.status, 'completed');
  t.equal(resumed.summaries.length, 3);
});

t.test('a failing run is recorded with its message and the others still run', async (t) => {
  const dir = t.testdir();
  const runs = sweepConfigs(dir, specs);
  const outcome = await runSweep(
    sweepJob(dir, runs).job,
    fakeRunOne(numbers, [], {
      before: (_c, i) => {
        if (i === 1) throw new Error('out of memory in conv2d');
      },
    }),
  );
  t.equal(outcome.status, 'completed');
  t.same(outcome.failures, [{ runName: 'rigl-d0.1-s1', error: 'out of memory in conv2d' }]);
  t.same(outcome.summaries.map((s) => s.runName), ['rigl-d0.1-s0', 'cigl-d0.1-s0']);
  const record = readSweepRecord(dir);
  t.same(record.runs.map((r) => [r.state, r.error]), [['completed', undefined], ['failed', 'out of memory in conv2d'], ['completed', undefined]]);
  t.match(fs.readFileSync(path.join(dir, 'comparison.md'), 'utf8'), /\| rigl +\| +90% \| [^|]+\| +1 \|/, 'the comparison holds the runs that finished');

  // A run that completes without a summary is a failure too.
  const dir2 = t.testdir();
  const none = await runSweep(sweepJob(dir2, sweepConfigs(dir2, specs.slice(0, 1))).job, async () => ({ status: 'completed', step: 1 }));
  t.match(none.failures![0].error, /run completed without a summary \(no .*summary\.json\)/);
});

t.test('trainRunOne hands the train seam a TrainJob for the run', async (t) => {
  const dir = t.testdir();
  const runs = sweepConfigs(dir, specs.slice(0, 1));
  const stopper = new AbortController();
  const { job, progressCalls } = sweepJob(dir, runs, stopper.signal);
  const jobs: TrainJob[] = [];
  const outcome = await runSweep(job, trainRunOne(async (trainJob) => {
    jobs.push(trainJob);
    trainJob.progress({ totalSteps: 9 });
    const summary = fakeSummary(trainJob.config, numbers(trainJob.config));
    return { status: 'completed', step: 9, summary };
  }));
  t.equal(outcome.summaries.length, 1);
  const [trainJob] = jobs;
  t.equal(trainJob.config, runs[0]);
  t.equal(trainJob.configHash, configHash(runs[0]));
  t.equal(trainJob.runDir.dir, path.join(dir, 'rigl-d0.1-s0'));
  t.ok(fs.existsSync(trainJob.runDir.paths.config), 'the run directory was prepared');
  t.equal(trainJob.resume, false);
  t.equal(trainJob.stop, stopper.signal);
  t.same(progressCalls, [{ epochs: 4, totalSteps: 9 }]);
});
