import * as fs from 'node:fs';
import * as path from 'node:path';
import { NEVER } from 'rxjs';
import t from 'tap';
import { resolveConfig } from '../../src/config/config';
import { buildCommands, runCommandLine } from '../../src/cli/main';
import type { GracefulStop } from '../../src/cli/signals';
import { defaultWiring, type CliWiring, type SweepJob } from '../../src/cli/wiring';
import { listPresets, loadPreset, PRESETS_DIR } from '../../src/sweep/preset';
import { repoRoot } from '../../src/util/paths';
import { captureIo } from '../helpers/cli-io';
import { fakeSummary } from './fake-sweep';

function fakeWiring(result: (job: SweepJob) => Awaited<ReturnType<CliWiring['sweep']>> = (job) => ({ status: 'completed', summaries: [] })) {
  const jobs: SweepJob[] = [];
  const stop: GracefulStop = { signal: new AbortController().signal, requested$: NEVER, dispose: () => {} };
  const wiring: CliWiring = { ...defaultWiring, gracefulStop: () => stop, sweep: async (job) => (jobs.push(job), result(job)) };
  return { wiring, jobs };
}

async function cigl(wiring: CliWiring, cwd: string, ...argv: string[]) {
  const io = captureIo(cwd);
  const code = await runCommandLine(argv, buildCommands(wiring), io);
  return { code, out: io.stdout.text, err: io.stderr.text };
}

t.test('the repository presets load and expand to the reproduction runs', async (t) => {
  t.same(listPresets(), ['overfit-pilot', 'repro-overfit', 'repro-overfit-p', 'repro-resnet20']);
  const cwd = t.testdir();
  const { wiring, jobs } = fakeWiring();
  const r = await cigl(wiring, cwd, 'sweep', '--preset', 'repro-overfit');
  t.equal(r.code, 0, r.err);
  const job = jobs[0];
  t.equal(job.dir, path.join(cwd, 'runs', 'repro-overfit'), 'runs under the working directory, in a fixed sweep name');
  t.equal(job.command, 'cigl sweep --preset repro-overfit');
  const names = job.runs.map((c) => c.output.runName);
  t.equal(names.length, 29, '15 main + 8 sparsity + 6 ablation runs');
  // Seed by seed, so that a study stopped early compares every method at the first seeds.
  t.same(names.slice(0, 6), ['dense-d1-s0', 'rigl-d0.1-s0', 'rigl-d0.05-s0', 'cigl-d0.1-s0', 'cigl-d0.05-s0', 'dense-d1-s1']);
  t.same(names.slice(10, 15), ['dense-d1-s2', 'rigl-d0.1-s2', 'rigl-d0.05-s2', 'cigl-d0.1-s2', 'cigl-d0.05-s2']);
  t.same(names.slice(15, 17), ['rigl-d0.5-s0', 'rigl-d0.2-s0'], 'then the sparsity series');
  t.same(names.slice(-2), ['cigl-no-averaging-d0.1-s1', 'cigl-no-averaging-d0.1-s2'], 'the ablations last, 3 seeds');
  const byName = new Map(job.runs.map((c) => [c.output.runName, c]));
  const c = byName.get('cigl-d0.05-s2')!;
  t.equal(c.data.path, path.resolve(repoRoot, '..', 'shared', 'datasets', 'cifar10'), 'data path: ../shared/datasets/cifar10 from the repository root');
  t.equal(c.data.format, 'image-folder');
  t.same([c.model.name, c.sparse.method, c.sparse.density, c.sparse.maskClassifier, c.seed, c.train.epochs, c.data.augment, c.data.trainImages], ['resnet20', 'cigl', 0.05, true, 2, 100, false, 5000]);
  t.same([c.optimiser.lr, c.optimiser.schedule, c.optimiser.warmupEpochs], [0.1, 'cosine', 5]);
  t.same([c.average.startEpoch, c.average.snapshotsPerEpoch], [80, 1], 'averaging over the last 20%: epochs 81–100, one snapshot each');
  t.equal(c.sparse.endFraction, 0.75);
  t.same([c.calibrate.split, c.calibrate.temperatureScaling], ['test', true]);
  t.same([byName.get('cigl-no-random-mask-d0.1-s0')!.sparse.randomMaskRate, byName.get('cigl-no-random-mask-d0.1-s0')!.average.enabled], [0, true]);
  t.same([byName.get('cigl-no-averaging-d0.1-s0')!.sparse.randomMaskRate, byName.get('cigl-no-averaging-d0.1-s0')!.average.enabled], [0.1, false]);
  t.equal(byName.get('dense-d1-s0')!.sparse.density, 1);

  const p = await cigl(wiring, cwd, 'sweep', '--preset', 'repro-overfit-p', '--seeds', '0');
  t.equal(p.code, 0, p.err);
  const pJob = jobs[1];
  t.same(pJob.runs.map((x) => [x.output.runName, x.sparse.randomMaskRate, x.sparse.density, x.calibrate.split, x.calibrate.temperatureScaling]), [
    ['cigl-p0.01-d0.1-s0', 0.01, 0.1, 'validation', false],
    ['cigl-p0.05-d0.1-s0', 0.05, 0.1, 'validation', false],
    ['cigl-p0.1-d0.1-s0', 0.1, 0.1, 'validation', false],
  ]);
  t.equal(pJob.command, 'cigl sweep --preset repro-overfit-p --seeds 0');
  const { train, sparse: _s, average: _a, calibrate: _c, output: _o, ...pRest } = pJob.runs[0];
  const { train: mainTrain, sparse: _ms, average: _ma, calibrate: _mc, output: _mo, ...mainRest } = byName.get('cigl-d0.1-s0')!;
  t.same([pRest, train.epochs], [mainRest, mainTrain.epochs], 'the p sweep trains with the main study\'s budget');

  t.equal((await cigl(wiring, cwd, 'sweep', '--preset', 'overfit-pilot')).code, 0);
  t.same(jobs[2].runs.map((x) => [x.output.runName, x.train.testEveryEpoch, x.data.augment, x.train.epochs]), [['dense-d1-s0', true, false, 100]], 'the pilot follows the test split');
  t.same(jobs[2].runs[0].data.trainImages, c.data.trainImages, "the pilot trains on the study's images");
});

t.test('flags with a preset: --methods filters by method or label, --densities and --seeds replace, overrides apply', async (t) => {
  const cwd = t.testdir();
  const { wiring, jobs } = fakeWiring();
  const r = await cigl(wiring, cwd, 'sweep', '-p', 'repro-overfit', '--methods', 'dense,cigl-no-averaging', '--densities', '0.2', '--seeds', '3', '--train.epochs', '2', '--optimiser.warmupEpochs', '0', '--output.runName', 'smoke');
  t.equal(r.code, 0, r.err);
  const job = jobs[0];
  t.same(job.runs.map((c) => [c.output.runName, c.train.epochs, c.output.runsDir]), [
    ['dense-d1-s3', 2, path.join(cwd, 'runs', 'smoke')],
    ['cigl-no-averaging-d0.2-s3', 2, path.join(cwd, 'runs', 'smoke')],
  ]);
  t.same(job.runs[1].average.startEpoch, 1, 'derived averaging start follows the budget');
  t.equal(job.command, 'cigl sweep --preset repro-overfit --methods dense,cigl-no-averaging --densities 0.2 --seeds 3 --train.epochs 2 --optimiser.warmupEpochs 0 --output.runName smoke');

  const unknown = await cigl(wiring, cwd, 'sweep', '--preset', 'repro-overfit', '--methods', 'set');
  t.equal(unknown.code, 2);
  t.match(unknown.err, /--methods: the preset has no set \(it has dense, rigl, cigl, cigl-no-random-mask, cigl-no-averaging\)/);
  const both = await cigl(wiring, cwd, 'sweep', '--preset', 'repro-overfit', '--config', 'x.yaml');
  t.match(both.err, /--config and --preset cannot be combined/);
  const missing = await cigl(wiring, cwd, 'sweep', '--preset', 'no-such-preset');
  t.equal(missing.code, 2);
  t.match(missing.err, /no preset "no-such-preset": not in .*presets \(overfit-pilot, repro-overfit, repro-overfit-p, repro-resnet20\) and no such file/);
  const help = await cigl(wiring, cwd, 'sweep', '--help');
  t.match(help.out, /--preset NAME/);
  t.match(help.out, /Presets: overfit-pilot, repro-overfit, repro-overfit-p, repro-resnet20\./);
});

t.test('a preset file given by path; its mistakes are named with their place', async (t) => {
  const cwd = t.testdir({
    'good.yaml': [
      'config:',
      '  data: { path: data/here }',
      '  train: { epochs: 3 }',
      'sweep:',
      '  - methods: [rigl]',
      '    densities: [0.5]',
      '    seeds: [0, 1]',
      '  - label: rigl-uniform',
      '    methods: [rigl]',
      '    densities: [0.5]',
      '    seeds: [0]',
      '    set: { sparse.distribution: uniform, calibrate.bins: [20] }',
    ].join('\n'),
    'bad.yaml': [
      'config: { train: { epochs: 3 } }',
      'extra: 1',
      'sweep:',
      '  - methods: [rigl, cigl]',
      '    label: two methods',
      '    densities: [high]',
      '    seeds: [0]',
      '    set: { sparse.densty: 0.1 }',
      '  - methods: rigl',
      '    densities: [0.1]',
      '    seeds: [0]',
      '    colour: red',
    ].join('\n'),
    'bad-config.yaml': 'config: { train: { epochs: 0 } }\nsweep: [{ methods: [rigl], densities: [0.1], seeds: [0] }]\n',
    'clash.yaml': 'sweep: [{ methods: [rigl], densities: [0.1], seeds: [0] }, { methods: [rigl], densities: [0.1], seeds: [0] }]\n',
  });
  const preset = loadPreset('good.yaml', cwd);
  t.equal(preset.file, path.join(cwd, 'good.yaml'));
  const { wiring, jobs } = fakeWiring();
  const r = await cigl(wiring, cwd, 'sweep', '--preset', 'good.yaml', '--dry-run');
  t.equal(r.code, 0, r.err);
  t.equal(jobs.length, 0, 'a dry run starts nothing');
  t.match(r.out, /rigl-d0\.5-s0 +rigl density 0\.5 seed 0\n.*rigl-d0\.5-s1 .*\n.*rigl-uniform-d0\.5-s0 +rigl density 0\.5 seed 0\n$/);
  await cigl(wiring, cwd, 'sweep', '--preset', 'good.yaml');
  const [plain, uniform] = [jobs[0].runs[0], jobs[0].runs[2]];
  t.equal(plain.data.path, path.join(cwd, 'data', 'here'), 'relative paths resolve against the preset file');
  t.same([plain.sparse.distribution, plain.calibrate.bins], ['erk', [15, 10]]);
  t.same([uniform.sparse.distribution, uniform.calibrate.bins], ['uniform', [20]], 'a group\'s set applies to its runs only');

  const bad = await cigl(wiring, cwd, 'sweep', '--preset', 'bad.yaml');
  t.equal(bad.code, 2);
  for (const problem of [
    /extra unknown preset field \(expected description, config, sweep\)/,
    /sweep\[0\]\.densities must be a non-empty list of numbers, got \["high"\]/,
    /sweep\[0\]\.label must be a name of letters, digits, "\.", "_" and "-", got "two methods"/,
    /sweep\[0\]\.label a labelled group has exactly one method, got 2/,
    /sweep\[0\]\.set\.sparse\.densty unknown config field \(did you mean sparse\.density\?\)/,
    /sweep\[1\]\.colour unknown group field/,
    /sweep\[1\]\.methods must be a non-empty list of strings, got "rigl"/,
  ]) {
    t.match(bad.err, problem);
  }
  t.match(bad.err, /\(from preset .*bad\.yaml\)/, 'problems name the preset file');
  const badConfig = await cigl(wiring, cwd, 'sweep', '--preset', 'bad-config.yaml');
  t.match(badConfig.err, /train\.epochs must be an integer >= 1, got 0 \(from preset .*bad-config\.yaml\)/);
  const clash = await cigl(wiring, cwd, 'sweep', '--preset', 'clash.yaml');
  t.match(clash.err, /two runs named rigl-d0\.1-s0; give the groups different labels/);
});

t.test('sweep command: prints failures, exits 1 when a run failed, and says how to continue a stopped sweep', async (t) => {
  const cwd = t.testdir();
  const { wiring } = fakeWiring((job) => ({
    status: 'stopped',
    summaries: [fakeSummary(job.runs[0], { accuracy: 0.5, ece15: 0.02, ece10: 0.01 })],
    failures: [{ runName: job.runs[1].output.runName!, error: 'disk full' }],
  }));
  const r = await cigl(wiring, cwd, 'sweep', '--densities', '0.1', '--methods', 'rigl,cigl,dense');
  t.equal(r.code, 1);
  t.match(r.err, /run cigl-d0\.1-s0 failed: disk full\n/);
  t.match(r.err, /sweep stopped after 1 of 3 runs; run the same command to continue:\n {2}cigl sweep --methods rigl,cigl,dense --densities 0\.1 --output\.runName sweep-\d{8}-\d{6}\n/);
});

t.test('calibrate.split: validation excludes temperature scaling fitted on the same split', async (t) => {
  t.throws(
    () => resolveConfig({ overrides: [{ path: 'calibrate.split', raw: 'validation', origin: '--calibrate.split' }] }),
    /calibrate\.split is validation, so calibrate\.temperatureScaling must be false/,
  );
  const ok = resolveConfig({
    overrides: [
      { path: 'calibrate.split', raw: 'validation', origin: 'x' },
      { path: 'calibrate.temperatureScaling', raw: 'false', origin: 'x' },
    ],
  });
  t.equal(ok.calibrate.split, 'validation');
  t.ok(fs.existsSync(PRESETS_DIR));
});
