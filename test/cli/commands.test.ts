import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { from, lastValueFrom } from 'rxjs';
import { buildCommands, runCommandLine } from '../../src/cli/main';
import { defaultWiring, notWired, type CliWiring, type FetchDatasetRequest, type SweepJob, type TrainJob, type EvalRequest, type PredictRequest } from '../../src/cli/wiring';
import type { Prediction } from '../../src/predict/predictor';
import { tableFromIPC } from 'apache-arrow';
import type { GracefulStop } from '../../src/cli/signals';
import type { RunSummary } from '../../src/sinks/summary';
import { NEVER } from 'rxjs';
import { captureIo } from '../helpers/cli-io';
import { syntheticEvents } from '../sinks/children/synthetic-events';

/** A wiring whose seams record what they were given. */
function fakeWiring(overrides: Partial<CliWiring> = {}) {
  const calls = { train: [] as TrainJob[], fetch: [] as FetchDatasetRequest[], sweep: [] as SweepJob[], evaluate: [] as EvalRequest[] };
  const stop: GracefulStop = { signal: new AbortController().signal, requested$: NEVER, dispose: () => {} };
  const wiring: CliWiring = {
    ...defaultWiring,
    gracefulStop: () => stop,
    train: async (job) => {
      calls.train.push(job);
      return { status: 'completed', step: 10, summary: summaryFor(job.runDir.name, job.runDir.dir) };
    },
    fetchDataset: async (request) => {
      calls.fetch.push(request);
      return { path: path.join(request.dest ?? '/cache', request.dataset) };
    },
    sweep: async (job) => {
      calls.sweep.push(job);
      return { status: 'completed', summaries: job.runs.map((r) => ({ ...summaryFor(r.output.runName!, job.dir), method: r.sparse.method, targetDensity: r.sparse.density })) };
    },
    evaluate: async (request) => {
      calls.evaluate.push(request);
      return { split: request.split, results: [{ stage: 'saved model', accuracy: 0.5, ece: { '15': 0.1 } }] };
    },
    ...overrides,
  };
  return { wiring, calls };
}

function summaryFor(runName: string, runDir: string): RunSummary {
  return {
    runName,
    runDir,
    configHash: 'ab'.repeat(32),
    method: 'cigl',
    model: 'cnn',
    targetDensity: 0.1,
    seed: 0,
    split: 'test',
    results: [{ stage: 'after averaging', accuracy: 0.6, ece: { '15': 0.02, '10': 0.018 } }],
    layers: [{ layer: 'conv1', size: 100, active: 10 }],
    outputs: { metrics: path.join(runDir, 'metrics.arrow') },
  };
}

async function cigl(wiring: CliWiring, cwd: string, ...argv: string[]) {
  const io = captureIo(cwd);
  const code = await runCommandLine(argv, buildCommands(wiring), io);
  return { code, out: io.stdout.text, err: io.stderr.text, io };
}

t.test('train resolves the config, creates the run directory, runs the job and prints the summary', async (t) => {
  const cwd = t.testdir({ 'exp.yaml': 'train:\n  epochs: 7\nsparse:\n  density: 0.05\n' });
  const { wiring, calls } = fakeWiring();
  const r = await cigl(wiring, cwd, 'train', '-c', 'exp.yaml', '--train.epochs', '3', '--set', 'seed=5', '--output.runName', 'r1');
  t.equal(r.code, 0, r.err);
  const job = calls.train[0];
  t.match(job.config, { seed: 5, train: { epochs: 3 }, sparse: { density: 0.05 } });
  t.equal(job.runDir.dir, path.join(cwd, 'runs', 'r1'));
  t.equal(job.resume, false);
  t.ok(fs.existsSync(job.runDir.paths.config));
  t.match(r.out, /Run r1: cigl, cnn, density 0\.1 of masked layers, seed 0/);
  t.match(r.out, /after averaging +60\.00% +0\.0200 +0\.0180/);
  // The progress stage handed to the job writes plain lines to the command's (non-TTY) stdout.
  const before = r.io.stdout.text.length;
  await lastValueFrom(from(syntheticEvents(0, 10)).pipe(job.progress({ logEverySteps: 5 })));
  const progress = r.io.stdout.text.slice(before).split('\n');
  t.match(progress[0], /^step 1  epoch 1\/3  loss 1\.0000/, 'epochs from the config');
  t.match(progress, [/^step 1 /, /^mask update  step 0/, /^step 6 /, /^epoch 1\/3 done/]);
});

t.test('train --resume continues a run with its saved config, refuses a different one', async (t) => {
  const cwd = t.testdir();
  const { wiring, calls } = fakeWiring({ train: async (job) => (calls.train.push(job), { status: 'stopped', step: 42 }) });
  const first = await cigl(wiring, cwd, 'train', '--train.epochs', '2', '--output.runName', 'r');
  t.equal(first.code, 130, `a stopped run exits 130 (asked by Ctrl-C)\n${first.err}`);
  t.match(first.err, /stopped after step 42; checkpoint saved\. Continue with:\n  cigl train --resume --output\.runsDir .*runs --output\.runName r/);

  const resumed = await cigl(wiring, cwd, 'train', '--resume', '--output.runName', 'r');
  t.equal(resumed.code, 130, resumed.err);
  t.equal(calls.train[1].resume, true);
  t.equal(calls.train[1].config.train.epochs, 2, 'the saved config is the base');
  t.equal(calls.train[1].configHash, calls.train[0].configHash);

  const changed = await cigl(wiring, cwd, 'train', '--resume', '--output.runName', 'r', '--train.epochs', '4');
  t.equal(changed.code, 2);
  t.match(changed.err, /cannot resume .*runs\/r: the configuration differs.*\n  train\.epochs: 2 \(saved\) vs 4 \(now\)/);
  t.equal(calls.train.length, 2, 'no job started');
});

t.test('train errors: bad config, existing run, unwritable output; nothing runs and nothing is lost', async (t) => {
  const cwd = t.testdir({ 'blocker': 'a file' });
  const { wiring, calls } = fakeWiring();
  const bad = await cigl(wiring, cwd, 'train', '--sparse.density', '1.5', '--model.name', 'resnet');
  t.equal(bad.code, 2);
  t.match(bad.err, /invalid config \(2 problems\):\n  - model\.name must be one of mlp, cnn, resnet20, wrn-16-4; got "resnet".*\(from --model\.name\)\n  - sparse\.density must be a number in \(0, 1\], got 1\.5 \(from --sparse\.density\)/);
  const typo = await cigl(wiring, cwd, 'train', '--sparse.densty', '0.1');
  t.equal(typo.code, 2);
  t.match(typo.err, /unknown config field sparse\.densty in --sparse\.densty \(did you mean sparse\.density\?\)\nRun 'cigl train --help'/);
  const flagErr = await cigl(wiring, cwd, 'train', '--bogus');
  t.equal(flagErr.code, 2);
  t.match(flagErr.err, /Unknown option '--bogus'/);

  t.equal((await cigl(wiring, cwd, 'train', '--output.runName', 'keep')).code, 0);
  const metrics = path.join(cwd, 'runs', 'keep', 'metrics.arrows');
  fs.writeFileSync(metrics, 'earlier results');
  const again = await cigl(wiring, cwd, 'train', '--output.runName', 'keep');
  t.equal(again.code, 2);
  t.match(again.err, /already exists; pass --resume/);
  t.equal(fs.readFileSync(metrics, 'utf8'), 'earlier results');

  const unwritable = await cigl(wiring, cwd, 'train', '--output.runsDir', 'blocker/runs');
  t.equal(unwritable.code, 2);
  t.match(unwritable.err, /cannot create output directory .*blocker\/runs: a path component is a file/);
  t.equal(calls.train.length, 1, 'only the one good run started');
});

t.test('train --print-config prints the resolved config and hash without creating anything', async (t) => {
  const cwd = t.testdir();
  const r = await cigl(fakeWiring().wiring, cwd, 'train', '--print-config', '--model.name', 'wrn-16-4');
  t.equal(r.code, 0);
  t.match(JSON.parse(r.out.slice(0, r.out.lastIndexOf('config hash'))), { model: { name: 'wrn-16-4' }, optimiser: { weightDecay: 5e-4 } });
  t.match(r.out, /config hash [0-9a-f]{64}\n$/);
  t.notOk(fs.existsSync(path.join(cwd, 'runs')));
});

t.test('a seam that is not wired fails with a message saying so', async (t) => {
  const cwd = t.testdir();
  const r = await cigl({ ...defaultWiring, train: notWired('the training pipeline'), gracefulStop: fakeWiring().wiring.gracefulStop }, cwd, 'train');
  t.equal(r.code, 1);
  t.match(r.err, /the training pipeline is not wired into this build/);
});

t.test('data: argument errors are reported before fetchDataset is called', async (t) => {
  const cwd = t.testdir();
  const { wiring, calls } = fakeWiring();
  const cases: [string[], RegExp][] = [
    [['data'], /missing subcommand: cigl data fetch DATASET/],
    [['data', 'get', 'cifar10'], /unknown subcommand "get" \(known: fetch\)/],
    [['data', 'fetch'], /missing DATASET: one of cifar10, cifar100/],
    [['data', 'fetch', 'cifar11'], /unknown data set "cifar11" \(known: cifar10, cifar100\)/],
    [['data', 'fetch', 'cifar10', 'extra'], /unexpected argument "extra"/],
    [['data', 'fetch', 'cifar10', '--url', 'ftp://x'], /--url must be an http\(s\):\/\/ or file:\/\/ URL; got "ftp:\/\/x"/],
    [['data', 'fetch', 'cifar10', '--dest'], /Option '--dest <value>' argument missing/],
    [['data', 'fetch', 'cifar10', '--train.epochs', '3'], /Unknown option '--train\.epochs'/],
  ];
  for (const [argv, pattern] of cases) {
    const r = await cigl(wiring, cwd, ...argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.err, pattern, argv.join(' '));
    t.match(r.err, /Run 'cigl data --help' for usage/);
  }
  t.equal(calls.fetch.length, 0);
  const ok = await cigl(wiring, cwd, 'data', 'fetch', 'cifar100', '--dest', 'd', '--force');
  t.equal(ok.code, 0);
  t.same(calls.fetch, [{ dataset: 'cifar100', dest: path.join(cwd, 'd'), url: undefined, force: true }]);
  t.equal(ok.out, `cifar100: ${path.join(cwd, 'd', 'cifar100')}\n`);
});

t.test('eval: argument checks, then the report as a table', async (t) => {
  const cwd = t.testdir({ model: { 'model.json': '{}' } });
  const { wiring, calls } = fakeWiring();
  t.match((await cigl(wiring, cwd, 'eval')).err, /--model DIR is required/);
  t.match((await cigl(wiring, cwd, 'eval', '--model', 'nowhere')).err, /--model nowhere: no model\.json in .*nowhere/);
  t.match((await cigl(wiring, cwd, 'eval', '-m', 'model', '--split', 'dev')).err, /--split must be one of train, validation, test; got "dev"/);
  t.match((await cigl(wiring, cwd, 'eval', '-m', 'model', '--bins', '15,1')).err, /--bins must be a comma-separated list of integers >= 2; got "15,1"/);
  t.match((await cigl(wiring, cwd, 'eval', '-m', 'model', '--batch-size', '0')).err, /--batch-size must be a positive integer/);
  t.equal(calls.evaluate.length, 0);
  const r = await cigl(wiring, cwd, 'eval', '-m', 'model', '--data', 'd', '--bins', '20');
  t.equal(r.code, 0, r.err);
  t.same(calls.evaluate[0], { modelDir: path.join(cwd, 'model'), dataPath: path.join(cwd, 'd'), dataFormat: 'auto', split: 'test', bins: [20], batchSize: 256, backend: 'auto' });
  t.match((await cigl(wiring, cwd, 'eval', '-m', 'model', '--backend', 'gpu')).err, /--backend must be one of auto, tensorflow, native, wasm, cpu; got "gpu"/);
  t.match(r.out, /Results on the test split\nStage +Accuracy +ECE \(15 bins\)\n-+ +-+ +-+\nsaved model +50\.00% +0\.1000\n/);
});

t.test('predict: argument checks, then the predictions as a table, JSON lines or Arrow', async (t) => {
  const cwd = t.testdir({ model: { 'model.json': '{}' }, 'a.png': 'x', 'b.jpg': 'x' });
  const requests: PredictRequest[] = [];
  const prediction = (input: string, label?: number): Prediction => ({
    input, classIndex: 1, className: 'dog', confidence: 0.7, abstained: false,
    top: [{ classIndex: 1, className: 'dog', probability: 0.7 }, { classIndex: 0, className: 'cat', probability: 0.3 }],
    probabilities: Float64Array.from([0.3, 0.7]), logits: Float32Array.from([0, 0.85]), ...(label === undefined ? {} : { label }),
  });
  const { wiring } = fakeWiring({
    predict: async (request) => {
      requests.push(request);
      const inputs = request.files.length > 0 ? request.files : ['d#0', 'd#1'];
      return { classNames: ['cat', 'dog'], temperature: 1.5, total: inputs.length, backend: 'fake', batches: from([inputs.map((f, i) => prediction(f, request.files.length > 0 ? undefined : i))]) };
    },
  });
  t.match((await cigl(wiring, cwd, 'predict', 'a.png')).err, /--model DIR is required/);
  t.match((await cigl(wiring, cwd, 'predict', '-m', 'model')).err, /give image FILEs or --data PATH/);
  t.match((await cigl(wiring, cwd, 'predict', '-m', 'model', 'a.png', '--data', 'd')).err, /not both/);
  t.match((await cigl(wiring, cwd, 'predict', '-m', 'model', 'missing.png')).err, /missing\.png: no such file/);
  t.match((await cigl(wiring, cwd, 'predict', '-m', 'model', 'a.png', '--abstain-below', '1.5')).err, /--abstain-below must be a number in \[0, 1\]; got "1\.5"/);
  t.match((await cigl(wiring, cwd, 'predict', '-m', 'model', 'a.png', '--top-k', '0')).err, /--top-k must be a positive integer/);
  t.match((await cigl(wiring, cwd, 'predict', '-m', 'model', 'a.png', '--format', 'csv')).err, /--format must be one of table, markdown, jsonl, arrow; got "csv"/);
  t.match((await cigl(wiring, cwd, 'predict', '-m', 'model', 'a.png', '--format', 'arrow')).err, /--format arrow needs --output FILE/);
  t.equal(requests.length, 0, 'nothing runs on a bad command line');

  const table = await cigl(wiring, cwd, 'predict', '-m', 'model', 'a.png', 'b.jpg', '--top-k', '2', '--abstain-below', '0.5');
  t.equal(table.code, 0, table.err);
  t.same(requests[0], {
    modelDir: path.join(cwd, 'model'), files: ['a.png', 'b.jpg'], dataPath: undefined, dataFormat: 'auto', split: 'test', topK: 2, abstainBelow: 0.5, batchSize: 256, backend: 'auto',
  });
  t.match(table.out, /^Input +Class +Confidence +Top classes\n[- ]+\na\.png +dog +0\.7000 +dog 0\.700, cat 0\.300\nb\.jpg/);
  t.match(table.err, /2 inputs, probabilities softmax\(logits \/ 1\.5000\)/);

  const jsonl = await cigl(wiring, cwd, 'predict', '-m', 'model', '--data', 'd', '--split', 'validation', '--format', 'jsonl');
  t.equal(jsonl.code, 0, jsonl.err);
  t.equal(requests[1].dataPath, path.join(cwd, 'd'));
  t.equal(requests[1].split, 'validation');
  const lines = jsonl.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(lines[1], { input: 'd#1', class: 'dog', confidence: 0.7, abstained: false, top: [{ class: 'dog', probability: 0.7 }, { class: 'cat', probability: 0.3 }], probabilities: { cat: 0.3, dog: 0.7 }, label: 'dog' });

  const arrow = await cigl(wiring, cwd, 'predict', '-m', 'model', '--data', 'd', '--format', 'arrow', '-o', 'p.arrow');
  t.equal(arrow.code, 0, arrow.err);
  const read = tableFromIPC(fs.readFileSync(path.join(cwd, 'p.arrow')));
  t.same(read.schema.fields.map((f) => f.name), ['input', 'class', 'class_index', 'confidence', 'abstained', 'label', 'p_cat', 'p_dog']);
  t.same(read.toArray().map((r) => r.toJSON()), [
    { input: 'd#0', class: 'dog', class_index: 1, confidence: 0.7, abstained: false, label: 0, p_cat: 0.3, p_dog: 0.7 },
    { input: 'd#1', class: 'dog', class_index: 1, confidence: 0.7, abstained: false, label: 1, p_cat: 0.3, p_dog: 0.7 },
  ]);
});

t.test('sweep: expands methods × densities × seeds into validated run configs', async (t) => {
  const cwd = t.testdir();
  const { wiring, calls } = fakeWiring();
  const dry = await cigl(wiring, cwd, 'sweep', '--methods', 'rigl,cigl,dense', '--densities', '0.1,0.05', '--seeds', '0,1', '--output.runName', 's', '--dry-run');
  t.equal(dry.code, 0, dry.err);
  const lines = dry.out.trim().split('\n');
  t.equal(lines.length, 2 * 2 * 2 + 2, 'dense runs once per seed');
  t.match(lines[0], /runs\/s\/rigl-d0\.1-s0 +rigl density 0\.1 seed 0$/);
  t.notOk(fs.existsSync(path.join(cwd, 'runs')), 'a dry run creates nothing');

  const bad = await cigl(wiring, cwd, 'sweep', '--densities', '0.1,1.5');
  t.equal(bad.code, 2);
  t.match(bad.err, /sparse\.density must be a number in \(0, 1\], got 1\.5 \(from --densities\)/);
  t.match((await cigl(wiring, cwd, 'sweep', '--methods', 'rigl,,cigl')).err, /--methods must be a comma-separated list/);
  t.match((await cigl(wiring, cwd, 'sweep', '--methods', 'rigl,magic')).err, /sparse\.method must be one of .* got "magic" \(from --methods\)/);

  const r = await cigl(wiring, cwd, 'sweep', '--densities', '0.1', '--train.epochs', '2', '--output.runName', 'cmp', '--markdown');
  t.equal(r.code, 0, r.err);
  const job = calls.sweep[0];
  t.equal(job.dir, path.join(cwd, 'runs', 'cmp'));
  t.same(job.runs.map((c) => [c.sparse.method, c.sparse.density, c.train.epochs, c.output.runName, c.output.runsDir]), [
    ['rigl', 0.1, 2, 'rigl-d0.1-s0', job.dir],
    ['cigl', 0.1, 2, 'cigl-d0.1-s0', job.dir],
  ]);
  t.match(r.out, /^\| Method \| Density \| Seed \| Stage +\| Accuracy \| ECE \(15 bins\) \| ECE \(10 bins\) \|\n\|-+\|-+:\|/);
  t.match(r.out, /\| rigl +\| +0\.1 \| +0 \| after averaging \| +60\.00% \| +0\.0200 \| +0\.0180 \|/);
});
