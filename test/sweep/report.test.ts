import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { RunConfig } from '../../src/config/config';
import { checkoutRoot, readSweepArtefacts, relativePaths } from '../../src/sweep/artefacts';
import { checkClaims } from '../../src/sweep/claims';
import { compareRuns, type ComparisonGroup, type StageStats } from '../../src/sweep/comparison';
import { compareWithPaper } from '../../src/sweep/paper';
import { chooseRandomMaskRate } from '../../src/sweep/random-mask-rate';
import { PAPER_TABLE3, reproductionReport, unfinishedRuns } from '../../src/sweep/report';
import { main as reportCli } from '../../src/sweep/report-cli';
import { temperatureComparisons, temperatureSummary, type Setting } from '../../src/sweep/report-setting';
import { runSweep } from '../../src/sweep/run-sweep';
import { repoRoot } from '../../src/util/paths';
import { fakeRunOne, sweepConfigs, sweepJob, type Curves, type Numbers, type RunSpec } from './fake-sweep';

// ---------------------------------------------------------------------------------------------------
// A tiny fake study: the pilot, the p sweep, the main study and the second setting.

const label = (c: RunConfig) => /^(.+)-d[^-]+-s\d+$/.exec(c.output.runName!)![1];

const mainSpecs: RunSpec[] = [
  ...[0, 1].map((seed) => ({ method: 'dense', density: 1, seed })),
  ...['rigl', 'cigl'].flatMap((method) => [0.1, 0.05].flatMap((density) => [0, 1].map((seed) => ({ method, density, seed })))),
  ...['rigl', 'cigl'].flatMap((method) => [0.5, 0.2, 0.02, 0.01].map((density) => ({ method, density, seed: 0 }))),
  ...[0, 1].map((seed) => ({ method: 'cigl', label: 'cigl-no-random-mask', density: 0.1, seed, set: { 'sparse.randomMaskRate': '0' } })),
  ...[0, 1].map((seed) => ({ method: 'cigl', label: 'cigl-no-averaging', density: 0.1, seed, set: { 'average.enabled': 'false' } })),
];

/** RigL's ECE over sparsity rises, dips at 98% and rises again; the 98% and 99% points have one seed. */
const RIGL_ECE: Record<number, number> = { 0.5: 0.025, 0.2: 0.032, 0.1: 0.03, 0.05: 0.036, 0.02: 0.03, 0.01: 0.041 };

/** The paper's picture: RigL less calibrated than dense; CigL better and more accurate. */
const paperLike: Numbers = (c) => {
  const noise = c.seed * 0.002;
  const l = label(c);
  const ece = l === 'rigl' ? RIGL_ECE[c.sparse.density] : { dense: 0.02, cigl: 0.02, 'cigl-no-random-mask': 0.026, 'cigl-no-averaging': 0.028 }[l]!;
  const accuracy = { dense: 0.9, rigl: 0.85, cigl: 0.86, 'cigl-no-random-mask': 0.855, 'cigl-no-averaging': 0.85 }[l]!;
  return { accuracy: accuracy + noise, ece15: ece + noise, ece10: ece + noise / 2, nll: 0.5, brier: 0.2, wallTimeMs: 60_000 };
};

/** Short-budget picture: RigL below dense at 90%, CigL calibrated better but less accurate at 95%. */
const notLikePaper: Numbers = (c) => {
  const base = paperLike(c);
  const l = label(c);
  if (l === 'dense') return { ...base, ece15: 0.035 + c.seed * 0.001 };
  if (l === 'cigl' && c.sparse.density === 0.05) return { ...base, accuracy: 0.8 + c.seed * 0.001 };
  return base;
};

/** Main-study runs' curves: 4 epochs, the last epoch's training accuracy 99.5% (+0.1 point per seed). */
const mainCurves: Curves = (c) =>
  Array.from({ length: c.train.epochs }, (_, i) => ({ lr: 0.01, trainLoss: 1 / (i + 1), trainAccuracy: i === c.train.epochs - 1 ? 0.995 + 0.001 * c.seed : 0.5 + 0.1 * i }));

/** The pilot over-fits: training accuracy 99.8%, test NLL lowest at epoch 8 then rising, test ECE rising throughout. */
const overfitting: Curves = (c) =>
  Array.from({ length: c.train.epochs }, (_, i) => {
    const e = i + 1;
    return {
      lr: e <= 10 ? 0.05 : 0.005,
      trainLoss: 2 / e,
      trainAccuracy: Math.min(0.998, 0.5 + 0.05 * e),
      validationLoss: 0.8 + 0.01 * (e - 8) ** 2,
      validationAccuracy: 0.7,
      validationEce: 0.02 + 0.002 * e,
      testLoss: 0.8 + 0.01 * (e - 8) ** 2,
      testAccuracy: e <= 12 ? 0.6 + 0.01 * e : 0.72 - 0.001 * (e - 12),
      testEce: 0.02 + 0.002 * e,
    };
  });

/** An under-fit pilot: training accuracy 90%, test NLL and ECE still falling. */
const underfit: Curves = (c) =>
  Array.from({ length: c.train.epochs }, (_, i) => {
    const e = i + 1;
    return { lr: 0.01, trainLoss: 1.6 - 0.03 * e, trainAccuracy: 0.5 + 0.02 * e, testLoss: 1.5 - 0.02 * e, testAccuracy: 0.5 + 0.01 * e, testEce: 0.03 - 0.0005 * e };
  });

const pilotSpecs: RunSpec[] = [{ method: 'dense', density: 1, seed: 0, set: { 'train.epochs': '20', 'train.testEveryEpoch': 'true', 'data.augment': 'false' } }];
const pSpecs: RunSpec[] = [0.01, 0.05, 0.1].flatMap((p) =>
  [0, 1].map((seed) => ({ method: 'cigl', label: `cigl-p${p}`, density: 0.1, seed, set: { 'sparse.randomMaskRate': String(p), 'calibrate.split': 'validation', 'calibrate.temperatureScaling': 'false' } })),
);
/** p = 0.1 has the lowest ECE but loses 2 points of accuracy; p = 0.05 is within 0.5 points of the best and lower than 0.01. */
const byRate: Numbers = (c) => {
  const p = c.sparse.randomMaskRate;
  const ece = p === 0.01 ? 0.03 : p === 0.05 ? 0.022 : 0.012;
  const accuracy = p === 0.01 ? 0.86 : p === 0.05 ? 0.857 : 0.84;
  return { accuracy: accuracy + c.seed * 0.001, ece15: ece, ece10: ece, wallTimeMs: 30_000 };
};
const secondSpecs: RunSpec[] = ['dense', 'rigl', 'cigl'].map((method) => ({
  method,
  density: method === 'dense' ? 1 : 0.1,
  seed: 0,
  set: { 'model.name': 'resnet20', 'data.augment': 'true', 'train.epochs': '6' },
}));

interface FakeOptions {
  readonly curves?: Curves;
  /** Runs (by index) that fail. */
  readonly fail?: readonly number[];
}

async function fakeSweep(dir: string, numbers: Numbers, specs: RunSpec[], command: string, options: FakeOptions = {}) {
  const hooks = {
    ...(options.curves ? { curves: options.curves } : {}),
    before: (_c: RunConfig, index: number) => {
      if (options.fail?.includes(index)) throw new Error(`fake failure of run ${index} | with a pipe`);
    },
  };
  const outcome = await runSweep(sweepJob(dir, sweepConfigs(dir, specs), undefined, command).job, fakeRunOne(numbers, [], hooks));
  if (!options.fail && outcome.failures?.length) throw new Error(outcome.failures[0].error);
  return readSweepArtefacts(dir);
}

/** The four sweeps of the study under `root/runs`, as `cigl sweep --preset NAME` names them. */
async function fakeStudy(root: string, options: { main?: Numbers; pilot?: Curves; secondFails?: boolean } = {}) {
  const dir = (name: string) => path.join(root, 'runs', name);
  return {
    pilot: await fakeSweep(dir('overfit-pilot'), paperLike, pilotSpecs, 'cigl sweep --preset overfit-pilot', { curves: options.pilot ?? overfitting }),
    pSweep: await fakeSweep(dir('repro-overfit-p'), byRate, pSpecs, 'cigl sweep --preset repro-overfit-p'),
    main: await fakeSweep(dir('repro-overfit'), options.main ?? paperLike, mainSpecs, 'cigl sweep --preset repro-overfit', { curves: mainCurves }),
    second: await fakeSweep(dir('repro-resnet20'), paperLike, secondSpecs, 'cigl sweep --preset repro-resnet20', options.secondFails ? { fail: [2] } : {}),
  };
}

const cliArgs = (root: string, runs = path.join(root, 'runs')) => [
  '--pilot',
  path.join(runs, 'overfit-pilot'),
  '--p-sweep',
  path.join(runs, 'repro-overfit-p'),
  '--main',
  path.join(runs, 'repro-overfit'),
  '--second',
  path.join(runs, 'repro-resnet20'),
];

// ---------------------------------------------------------------------------------------------------

t.test('the report of a study in which the claims hold: every section, with numbers from the artefacts', async (t) => {
  const root = t.testdir();
  const study = await fakeStudy(root);
  t.equal(study.main.summaries.length, 22);
  const md = reproductionReport(study, { outDir: root });
  if (process.env.CIGL_KEEP_REPORT) fs.writeFileSync(process.env.CIGL_KEEP_REPORT, md);
  t.notMatch(md, /Provisional/, 'a finished main study has final verdicts');
  const partial = reproductionReport({ ...study, main: { ...study.main, summaries: study.main.summaries.slice(0, 5) } }, { outDir: root });
  t.match(partial, /## Verdicts\n\n\*\*Provisional:\*\* the main study has finished 5 of its 22 runs; the verdicts below are computed from those/);

  // What ran.
  t.match(md, /\| Pilot \(over-fitting regime\) \| `runs\/overfit-pilot` +\| `cigl sweep --preset overfit-pilot` +\| completed +\| 1 of 1 +\|/);
  t.match(md, /\| Main study +\| `runs\/repro-overfit` +\| `cigl sweep --preset repro-overfit` +\| completed +\| 22 of 22 +\|/);

  // The claims at 90% and 95%, mean ± sd and two standard errors; the other sparsities apart.
  t.match(md, /- Main study, at 90% and 95%: Claim \(1\), RigL's ECE is above the dense model's \(ECE with 15 bins\): \*\*holds\*\* at every sparsity tested \(90%, 95%\)\./);
  t.match(md, /Claim \(2\), CigL's ECE is below RigL's at the same sparsity, with accuracy no worse \(ECE with 15 bins\): \*\*holds\*\* at every sparsity tested \(90%, 95%\)\./);
  t.match(md, /holds at 95%: RigL 0\.0370 ± 0\.0014 vs dense 0\.0210 ± 0\.0014 \(Δ = \+0\.0160, more than two standard errors \(0\.0028\)\)/);
  t.match(md, /With 10 bins: claim \(1\) gives the same verdict \(holds\)/);
  t.match(md, /At the other sparsities swept \(50%, 80%, 98%, 99%\):\n\n- Claim \(1\), .*\*\*holds\*\* at every sparsity tested \(50%, 80%, 98%, 99%\)\./);
  t.match(md, /holds at 99%: RigL 0\.0410 vs dense 0\.0210 ± 0\.0014 \(Δ = \+0\.0200, one seed: no spread to judge it by\)/);

  // The results table: train accuracy from the curves, every method also after temperature scaling.
  t.match(md, /\| Method +\| Sparsity \| Seeds \| Train acc\. \(%\) \| Accuracy \(%\) \| +ECE \(15 bins\) \| +NLL \| +ECE after TS \| +NLL after TS \| +Temperature \|/);
  t.match(md, /\| rigl +\| +95% \| +2 \| +99\.55 ± 0\.07 \| 85\.10 ± 0\.14 \| 0\.0370 ± 0\.0014 \| 0\.5000 ± 0\.0000 \| 0\.0320 ± 0\.0014 \| 0\.4950 ± 0\.0000 \| 1\.500 ± 0\.000 \|/);
  t.match(md, /\| cigl +\| +99% \| +1 \| +99\.50 \| +86\.00 \| +0\.0200 \| +0\.5000 \| +0\.0150 \| +0\.4950 \| +1\.500 \|/);

  // CigL against temperature scaling.
  t.match(md, /- CigL's ECE before any post-hoc calibration is lower than temperature-scaled RigL at 80%, 90%, 95%, 98%, 99%, not at 50%; not lower than the temperature-scaled dense model at any sparsity compared \(50%, 80%, 90%, 95%, 98%, 99%\)\./);
  t.match(md, /At 90%: CigL without post-hoc calibration has ECE 0\.0210 ± 0\.0014; against temperature-scaled RigL 0\.0260 ± 0\.0014 \(Δ = −0\.0050, more than two standard errors \(0\.0028\): CigL \*\*lower\*\*\); against temperature-scaled dense 0\.0160 ± 0\.0014 \(Δ = \+0\.0050, .*: CigL \*\*not lower\*\*\)\. With temperature scaling CigL reaches 0\.0160 ± 0\.0014/);

  // Inside CigL: recompute vs averaging, paired over seeds, and the averaging record.
  t.match(md, /### Inside CigL: the BatchNorm recompute and the averaging/);
  t.match(md, /\| cigl +\| +90% \| live, recomputed BN +\| +2 \| 85\.70 ± 0\.14 \|/);
  t.match(md, /- cigl at 90%:\n  - the BatchNorm recompute alone \("live, recomputed BN" − "live"\): ECE −0\.0040 ± 0\.0000 over 2 seeds \(more than two standard errors\), accuracy \+0\.60 ± 0\.00 points over 2 seeds \(more than two standard errors\);/);
  t.match(md, /  - the averaging \("after averaging" − "live, recomputed BN"\): ECE −0\.0060 ± 0\.0000 over 2 seeds .*, accuracy \+0\.40 ± 0\.00 points/);
  t.match(md, /  - averaging record \(2 of 2 runs\): 4 snapshots, steps 30–39; relative change of the average from the live weights ‖W̄ − W‖ \/ ‖W‖ = 0\.1050 ± 0\.0071\./);
  t.match(md, /- cigl at 99%:\n(.*\n){2}  - both together \("after averaging" − "live"\): ECE −0\.0100 \(one seed\), accuracy \+1\.00 points \(one seed\)\./);
  t.notMatch(md, /cigl-no-averaging at 90%:\n  - the BatchNorm/, 'the run without averaging has no averaging stages');

  // Ablations.
  t.match(md, /CigL without the random mask \(p = 0\) at 90%: ECE 0\.0270 ± 0\.0014 against 0\.0210 ± 0\.0014 for full CigL \(higher; Δ = \+0\.0060, more than two standard errors/);
  t.match(md, /CigL without weight and mask averaging at 90%: ECE 0\.0290 ± 0\.0014 against 0\.0210 ± 0\.0014/);
  t.match(md, /## Verdicts\n(.*\n)*- Main study, ablation: CigL without the random mask \(p = 0\) at 90%: ECE 0\.0270 ± 0\.0014 against 0\.0210 ± 0\.0014 for full CigL \(higher; /, 'the ablations among the verdicts');

  // Reliability diagrams side by side at 90% and 95%.
  t.match(md, /\| Sparsity \| dense +\| RigL +\| CigL +\|/);
  for (const d of ['0.1', '0.05']) {
    t.match(md, new RegExp(`\\| ${d === '0.1' ? '90' : '95'}% +\\| <img src="runs/repro-overfit/dense-d1-s0/reliability.png" width="280" alt="dense, 0% sparse, seed 0"> \\| <img src="runs/repro-overfit/rigl-d${d}-s0/reliability.png"[^|]*\\| <img src="runs/repro-overfit/cigl-d${d}-s0/reliability.png"`));
  }

  // The pilot: evidence in words, with the numbers and the rule.
  t.match(md, /Rule: the regime is reached when the last epoch's training accuracy is at least 99%, and test NLL and test ECE rise after their minimum: smoothed by a trailing median over 5 epochs, the curve ends at least 1% above its lowest value, and that lowest value lies at least 5 epochs before the end\./);
  t.match(md, /dense cnn, 20 epochs, batch 128, augmentation off, lr 0\.1 after 1 warm-up epoch, cosine decay, momentum 0\.9 \(Nesterov\), weight decay 0\.0005; the test split evaluated at every epoch end/);
  t.match(md, /- Training accuracy at the last epoch \(20\): 99\.80% — \*\*at least 99%\*\*; lr in the last epoch 0\.00500\./);
  t.match(md, /- Test NLL, 5-epoch median: lowest 0\.8100 \(window ending at epoch 9\), last 1\.8000 at epoch 20 \(\+122\.2%\): \*\*rising\*\*\. Context: the raw minimum is 0\.8000 at epoch 8; the slope over the last 4 epochs is \+2\.10e-1 per epoch\./);
  t.match(md, /- Test ECE \(15 bins\), 5-epoch median: lowest 0\.0260 \(window ending at epoch 5\), last 0\.0560 at epoch 20 \(\+115\.4%\): \*\*rising\*\*\. Context: the raw minimum is 0\.0220 at epoch 1; the slope over the last 4 epochs is \+2\.00e-3 per epoch\./);
  t.match(md, /- Test accuracy peaks at 72\.00% at epoch 12; the last epoch has 71\.20%\./);
  t.match(md, /- \*\*The over-fitting regime was reached\*\*\./);
  t.match(md, /- Over-fitting regime \(pilot\): \*\*reached\*\* by dense-d1-s0 after 20 epochs/);
  t.match(md, /\| +8 \| +0\.0500 \| +0\.2500 \| +90\.00 \| +0\.8000 \| +70\.00 \| +0\.0360 \| +0\.8000 \| +68\.00 \| +0\.0360 \|/, 'the per-epoch table');
  t.match(md, /_No figure: training-curves\.png is drawn when the artefacts are copied \(--assets\)\._/);

  // The p sweep.
  t.match(md, /Chosen on the \*\*validation\*\* split/);
  t.match(md, /\| +0\.05 \| +2 \| 85\.75 ± 0\.07 \| +0\.0220 ± 0\.0000 \| yes +\|/);
  t.match(md, /\*\*The main study's CigL runs used p = 0\.01, not the chosen p = 0\.05\*\*/);

  // ECE and accuracy vs sparsity: the figure, the series and the double-descent rule and verdicts.
  t.match(md, /!\[ECE and accuracy vs sparsity\]\(runs\/repro-overfit\/ece-vs-sparsity\.png\)/);
  t.match(md, /\| 95% +\| +\| +\| +\| 0\.0370 ± 0\.0014 \(2\) \| +85\.10 ± 0\.14 \| 0\.0210 ± 0\.0014 \(2\) \| +86\.10 ± 0\.14 \|/);
  t.match(md, /- rigl: \*\*appears\*\*: ECE 0\.0210 ± 0\.0014 at 0% rises to 95% \(0\.0370 ± 0\.0014; 11\.3 standard errors\), falls to 98% \(0\.0300; 4\.0 standard errors, with the borrowed spread\) and rises to 99% \(0\.0410; 5\.5 standard errors, with the borrowed spread\) \(one-seed points judged with a standard deviation of 0\.0014, the largest measured on this curve\)\./);
  t.match(md, /- cigl: \*\*absent\*\*: the means never rise, fall and rise again/);
  t.match(md, /- Double descent of RigL's ECE over sparsity: \*\*appears\*\*, judging the sparsities run with one seed by the largest seed-to-seed spread measured on the curve\./);
  t.match(md, /- Double descent of CigL's ECE over sparsity: \*\*absent\*\*\./, 'CigL\'s verdict among the verdicts too');

  // The paper, with same direction / same size.
  t.match(md, /\| 90% +\| paper, ResNet-50 +\| +93\.84 \| +94\.56 \| +0\.0441 \| +0\.0361 \| +−18\.1% \|/);
  t.match(md, /\| +\| this study, cnn +\| +85\.10 ± 0\.14 \| +86\.10 ± 0\.14 \| 0\.0305 ± 0\.0007 \| 0\.0205 ± 0\.0007 \| +−32\.8% \|/);
  t.match(md, /- At 90%: the paper's CigL changes ECE by −18\.1% \(ResNet-50\) and −41\.5% \(WRN-22-2\) and accuracy by \+0\.72 points \(ResNet-50\); here −32\.8% \(Δ = −0\.0100, more than two standard errors \(0\.0014\)\) and \+1\.00 points \(.*\)\. ECE: \*\*same direction, same size\*\*; accuracy: \*\*same direction, same size\*\*\./);
  t.match(md, /- Against the paper \(CigL − RigL\): ECE change in the paper's direction at 80%, 90%, 95%, 99% of 4 sparsities compared, of the paper's size at 80%, 90%, 95%, 99%; accuracy change in the paper's direction at 80%, 90%, 95%, 99%\./);
  t.ok(md.includes(PAPER_TABLE3.citation));

  // The second setting, with the same rows.
  t.match(md, /## Second setting\n\nresnet20, 6 epochs with augmentation; results on the test split\./);
  t.match(md, /- Second setting \(resnet20\): Claim \(1\), .*: \*\*holds\*\* at every sparsity tested \(90%\)\./);

  // Setup and cost of every sweep.
  t.match(md, /### Main study: `runs\/repro-overfit`\n\n- Command: `cigl sweep --preset repro-overfit`/);
  t.match(md, /- Data: `fixtures\/cifar10-subset` \(auto\)/, 'the data path relative to the checkout');
  t.match(md, /- Training: cnn, 20 epochs, batch 128, lr 0\.1 after 1 warm-up epoch, cosine decay, momentum 0\.9 \(Nesterov\), weight decay 0\.0005; ECE with 15 and 10 bins; results on the test split\n/, 'the dense pilot: no masks, no averaging');
  t.match(md, /weight decay 0\.0005; mask updates every 100 steps until 75% of training \(erk layer densities\); averaging over epochs 4–4, 1 snapshot per epoch; ECE with 15 and 10 bins/);
  t.match(md, /- Cost: 22m00s of training wall time over 22 runs \(1m00s per run\); per run: dense 1m00s, rigl 1m00s, cigl 1m00s, cigl-no-random-mask 1m00s, cigl-no-averaging 1m00s\./);
  t.match(md, /- Cost: 3m00s of training wall time over 6 runs \(30s per run\)/, 'the p sweep');
  t.match(md, /Total: 29m00s of training wall time over 32 runs\./);
  t.match(md, /"runsDir": "\.tap\/fixtures\/[^"]+\/runs\/repro-overfit"/, 'the configuration shows relative paths');
  t.notOk(md.includes(repoRoot), 'no absolute path of this machine');
});

t.test('verdicts flip with the numbers: claims, the pilot, CigL against temperature scaling', async (t) => {
  const root = t.testdir();
  const study = await fakeStudy(root, { main: notLikePaper, pilot: underfit });
  const md = reproductionReport(study, { outDir: root });
  t.match(md, /Claim \(1\), RigL's ECE is above the dense model's \(ECE with 15 bins\): \*\*holds only partly\*\*: at 95%, not at 90%\./);
  t.match(md, /does not hold at 90%: RigL 0\.0310 ± 0\.0014 vs dense 0\.0355 ± 0\.0007 \(Δ = −0\.0045/);
  t.match(md, /Claim \(2\), .*: \*\*holds only partly\*\*: at 90%, not at 95%\./);
  t.match(md, /does not hold at 95%: ECE CigL .* lower; accuracy CigL 80\.05 ± 0\.07% vs RigL 85\.10 ± 0\.14% \(Δ = −5\.05 points, more than two standard errors .*\)\), worse/);
  t.match(md, /accuracy: \*\*opposite direction\*\*/, 'the paper comparison flips with the accuracy at 95%');
  t.match(md, /- \*\*The over-fitting regime was not reached\*\* \(fails on: training accuracy, test NLL, test ECE\)\./);
  t.match(md, /- Training accuracy at the last epoch \(20\): 90\.00% — \*\*below 99%\*\*/);
  t.match(md, /- Test NLL, 5-epoch median: lowest 1\.1400 \(window ending at epoch 20\), last 1\.1400 at epoch 20 \(\+0\.0%\): \*\*not rising\*\*\./);
  t.match(md, /- Over-fitting regime \(pilot\): \*\*not reached\*\*/);

  // A pilot without the per-epoch test split cannot show the regime.
  const noTest = await fakeSweep(path.join(root, 'runs', 'pilot-without-test'), paperLike, [{ ...pilotSpecs[0], set: { 'train.epochs': '20' } }], 'cigl sweep --preset overfit-pilot', { curves: mainCurves });
  const withoutTest = reproductionReport({ ...study, pilot: noTest }, { outDir: root });
  t.match(withoutTest, /\*\*train\.testEveryEpoch was off: no per-epoch test curve\*\*/);
  t.match(withoutTest, /- Test NLL: not logged at enough epochs to judge \(it needs train\.testEveryEpoch and at least 10 epochs\): \*\*not rising\*\*\./);
  t.match(withoutTest, /- \*\*The over-fitting regime was not reached\*\* \(fails on: test NLL, test ECE\)\./);

  // Nothing holds: no sparsity where either claim is true.
  const groups = compareRuns(study.main.summaries.filter((s) => s.targetDensity === 1 || s.targetDensity === 0.1));
  const [one, two] = checkClaims(
    groups.map((g) => (g.label === 'cigl' ? { ...g, headline: { ...g.headline, accuracy: { n: 2, mean: 0.5, std: 0.01 } } } : g)),
    '15',
  );
  t.equal(one.verdict, 'does not hold');
  t.match(one.statement, /\*\*does not hold\*\* at any sparsity tested \(90%\)\./);
  t.equal(two.verdict, 'does not hold');
  const untestable = checkClaims(groups.filter((g) => g.label !== 'dense' && g.label !== 'rigl'), '15');
  t.same(untestable.map((v) => v.verdict), ['cannot be tested', 'cannot be tested']);
  t.match(untestable[0].statement, /cannot be tested here: the sweep has no dense run\./);
});

/** A group with a headline stage and, when `scaled` is given, a temperature-scaled stage. */
function group(label: string, density: number, ece: number, accuracy: number, spread: { std?: number; n?: number; scaled?: number } = {}): ComparisonGroup {
  const n = spread.n ?? 3;
  const stats = (mean: number) => ({ n, mean, ...(spread.std !== undefined ? { std: spread.std } : {}) });
  const headline: StageStats = { stage: 'final', calibrated: false, accuracy: stats(accuracy), ece: { '15': stats(ece), '10': stats(ece) } };
  const scaled: StageStats[] = spread.scaled === undefined ? [] : [{ stage: 'after temperature scaling', calibrated: true, accuracy: stats(accuracy), ece: { '15': stats(spread.scaled), '10': stats(spread.scaled) } }];
  return { label, method: label, model: 'cnn', split: 'test', density, seeds: [0, 1, 2].slice(0, n), runNames: [], stages: [headline, ...scaled], headline };
}

t.test('the two-standard-error check flips with the spread', async (t) => {
  const tight = checkClaims([group('dense', 1, 0.02, 0.9, { std: 0.001 }), group('rigl', 0.1, 0.03, 0.85, { std: 0.001 })], '15')[0];
  t.match(tight.checks[0].detail, /Δ = \+0\.0100, more than two standard errors \(0\.0016\)/);
  const loose = checkClaims([group('dense', 1, 0.02, 0.9, { std: 0.01 }), group('rigl', 0.1, 0.03, 0.85, { std: 0.01 })], '15')[0];
  t.match(loose.checks[0].detail, /Δ = \+0\.0100, less than two standard errors \(0\.0163\)/);
  t.equal(loose.verdict, 'holds', 'the verdict compares means; the standard errors qualify it');
});

t.test('same direction and same size as the paper: each judgement flips', async (t) => {
  // At 90% the paper's ECE changes are −18.1% (ResNet-50) and −41.5% (WRN-22-2): same size is 9.05%–83.1%; accuracy +0.72 points: 0.36–1.44.
  const at90 = (cigl: number, accuracy: number) => compareWithPaper([group('rigl', 0.1, 0.04, 0.85), group('cigl', 0.1, cigl, accuracy)], '10')[0];
  const same = at90(0.028, 0.858);
  t.same([same.eceSameDirection, same.eceSameSize, same.accuracySameDirection, same.accuracySameSize], [true, true, true, true]);
  t.match(same.statement, /here −30\.0% .* and \+0\.80 points .*ECE: \*\*same direction, same size\*\*; accuracy: \*\*same direction, same size\*\*/);
  const small = at90(0.039, 0.8505);
  t.same([small.eceSameDirection, small.eceSameSize, small.accuracySameDirection, small.accuracySameSize], [true, false, true, false]);
  t.match(small.statement, /ECE: \*\*same direction, different size\*\*; accuracy: \*\*same direction, different size\*\*/);
  const large = at90(0.004, 0.9);
  t.same([large.eceSameSize, large.accuracySameSize], [false, false], '−90% and +5 points are beyond twice the paper');
  const opposite = at90(0.044, 0.84);
  t.same([opposite.eceSameDirection, opposite.eceSameSize, opposite.accuracySameDirection], [false, false, false]);
  t.match(opposite.statement, /ECE: \*\*opposite direction\*\*; accuracy: \*\*opposite direction\*\*/);
  t.same(compareWithPaper([group('rigl', 0.3, 0.04, 0.85), group('cigl', 0.3, 0.03, 0.86)], '10'), [], 'no comparison at a sparsity the paper lacks');
});

t.test('CigL against temperature scaling: lower or not than scaled RigL and dense, per sparsity', async (t) => {
  const setting = (groups: ComparisonGroup[]): Setting => ({ sweep: { dir: '', record: { format: 1, status: 'completed', runs: [] }, summaries: [], epochs: new Map() }, groups, bins: '15', allBins: ['15'], link: (f) => f });
  const groups = [
    group('dense', 1, 0.03, 0.9, { std: 0.001, scaled: 0.012 }),
    group('rigl', 0.1, 0.04, 0.85, { std: 0.001, scaled: 0.02 }),
    group('cigl', 0.1, 0.015, 0.86, { std: 0.001, scaled: 0.01 }),
    group('rigl', 0.05, 0.045, 0.84, { std: 0.001, scaled: 0.014 }),
    group('cigl', 0.05, 0.018, 0.85, { std: 0.001, scaled: 0.011 }),
  ];
  const comparisons = temperatureComparisons(setting(groups));
  t.same(comparisons.map((c) => [c.density, c.beatsScaledRigl, c.beatsScaledDense]), [[0.1, true, false], [0.05, false, false]]);
  t.equal(temperatureSummary(comparisons), "CigL's ECE before any post-hoc calibration is lower than temperature-scaled RigL at 90%, not at 95%; not lower than the temperature-scaled dense model at any sparsity compared (90%, 95%).");
  t.match(comparisons[0].statement, /With temperature scaling CigL reaches 0\.0100 ± 0\.0010 \(against scaled RigL: Δ = −0\.0100, more than two standard errors/);
  t.match(temperatureSummary([]), /cannot be compared/);
});

t.test('report-cli copies the study next to the report; the copies regenerate it byte for byte and hold no machine path', async (t) => {
  const root = t.testdir();
  await fakeStudy(root, { secondFails: true });
  const docs = path.join(root, 'docs');
  const out = path.join(docs, 'REPRODUCTION.md');
  const assets = path.join(docs, 'reproduction');
  fs.mkdirSync(path.join(assets, 'repro-overfit', 'stale-run'), { recursive: true });
  fs.writeFileSync(path.join(assets, 'repro-overfit', 'sweep.json'), '{}');
  await reportCli([...cliArgs(root), '--assets', assets, '--out', out]);
  const md = fs.readFileSync(out, 'utf8');
  t.notOk(fs.existsSync(path.join(assets, 'repro-overfit', 'stale-run')), 'an earlier copy is replaced whole');

  // Links point at the copies; the pilot's figure is drawn there.
  t.match(md, /!\[ECE and accuracy vs sparsity\]\(reproduction\/repro-overfit\/ece-vs-sparsity\.png\)/);
  t.match(md, /!\[Training curves of dense-d1-s0\]\(reproduction\/overfit-pilot\/dense-d1-s0\/training-curves\.png\)/);
  t.ok(md.includes('<img src="reproduction/repro-overfit/cigl-d0.05-s0/reliability.png"'));
  for (const f of [
    'overfit-pilot/sweep.json',
    'overfit-pilot/dense-d1-s0/epochs.json',
    'overfit-pilot/dense-d1-s0/training-curves.svg',
    'overfit-pilot/dense-d1-s0/training-curves.png',
    'repro-overfit-p/sweep.json',
    'repro-overfit/comparison.md',
    'repro-overfit/comparison.arrow',
    'repro-overfit/runs.arrow',
    'repro-overfit/ece-vs-sparsity.svg',
    'repro-overfit/ece-vs-sparsity.png',
    'repro-overfit/cigl-d0.1-s1/summary.json',
    'repro-overfit/cigl-d0.1-s1/config.json',
    'repro-overfit/cigl-d0.1-s1/reliability.png',
    'repro-overfit/cigl-d0.1-s1/epochs.json',
    'repro-resnet20/sweep.json',
  ]) {
    t.ok(fs.existsSync(path.join(assets, f)), f);
  }
  for (const bulky of ['overfit-pilot/dense-d1-s0/metrics.arrow', 'overfit-pilot/dense-d1-s0/metrics.arrows', 'repro-overfit/cigl-d0.1-s1/mask-stats.arrow']) {
    t.notOk(fs.existsSync(path.join(assets, bulky)), `${bulky} stays behind`);
  }
  const epochs = JSON.parse(fs.readFileSync(path.join(assets, 'overfit-pilot/dense-d1-s0/epochs.json'), 'utf8'));
  t.equal(epochs.epochs.length, 20);
  const eighth = overfitting(readSweepArtefacts(path.join(root, 'runs', 'overfit-pilot')).record.runs[0].config)[7];
  t.same(epochs.epochs[7], {
    epoch: 8,
    lr: eighth.lr,
    trainLoss: eighth.trainLoss,
    trainAccuracy: eighth.trainAccuracy,
    valLoss: eighth.validationLoss,
    valAccuracy: eighth.validationAccuracy,
    valEce15: eighth.validationEce,
    testLoss: eighth.testLoss,
    testAccuracy: eighth.testAccuracy,
    testEce15: eighth.testEce,
  }, 'the eighth epoch, with the lr of its last step; the final evaluation rows are left out');

  // A partly finished sweep: the report names what is missing instead of failing.
  t.match(md, /\| Second setting +\| `reproduction\/repro-resnet20` +\| `cigl sweep --preset repro-resnet20` +\| completed +\| 2 of 3 +\| cigl-d0\.1-s0 \(failed\) \|/);
  t.match(md, /\| cigl-d0\.1-s0 \| failed: fake failure of run 2 \\\| with a pipe \|/);

  // No absolute path of this machine in the copies (text and binary) or in the report.
  const machine = [repoRoot, root, os.tmpdir() + path.sep].map((p) => Buffer.from(p));
  const files = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  for (const file of [...files(assets), out]) {
    const bytes = fs.readFileSync(file);
    const found = machine.find((m) => bytes.includes(m));
    t.notOk(found, `${path.relative(root, file)} holds no machine path${found ? ` (has ${found})` : ''}`);
    if (file.endsWith('.json')) {
      const absolute: string[] = [];
      const walk = (v: unknown): void => {
        if (typeof v === 'string' && path.isAbsolute(v)) absolute.push(v);
        else if (v && typeof v === 'object') Object.values(v).forEach(walk);
      };
      walk(JSON.parse(bytes.toString('utf8')));
      t.same(absolute, [], `${path.relative(root, file)}: no absolute path values`);
    }
  }
  const summary = JSON.parse(fs.readFileSync(path.join(assets, 'repro-overfit', 'cigl-d0.1-s1', 'summary.json'), 'utf8'));
  t.match(summary.runDir, /^\.tap\/fixtures\/.*\/runs\/repro-overfit\/cigl-d0\.1-s1$/, 'the run folder, relative to the checkout');
  t.equal(summary.outputs['reliability diagram'], `${summary.runDir}/reliability.png`);

  // The copies are sweep folders of their own: the report regenerated from them is the same, byte for byte.
  const again = path.join(docs, 'again.md');
  await reportCli([...cliArgs(root, assets), '--out', again]);
  t.equal(fs.readFileSync(again, 'utf8'), md, 'regenerated from the copies');

  // In a fresh clone (no runs/), the same command falls back to the copies, and says so.
  fs.renameSync(path.join(root, 'runs'), path.join(root, 'runs-elsewhere'));
  const notes: string[] = [];
  const stderr = { write: (s: string) => (notes.push(s), true) } as unknown as NodeJS.WritableStream;
  await reportCli([...cliArgs(root), '--assets', assets, '--out', out], process.stdout, stderr);
  t.equal(fs.readFileSync(out, 'utf8'), md, 'the committed copies regenerate the committed report');
  t.equal(notes.filter((n) => /no sweep\.json; the report uses the earlier copy in /.test(n)).length, 4);

  // Copying afresh gives the same report too.
  fs.renameSync(path.join(root, 'runs-elsewhere'), path.join(root, 'runs'));
  await reportCli([...cliArgs(root), '--assets', assets, '--out', out]);
  t.equal(fs.readFileSync(out, 'utf8'), md, 'a second copy from the sweeps');

  let printed = '';
  await reportCli(['--main', path.join(assets, 'repro-overfit')], { write: (s: string) => ((printed += s), true) } as unknown as NodeJS.WritableStream);
  t.match(printed, /^# Reproducing CigL on CIFAR-10 in the over-fitting regime\n/, 'without --out the report goes to stdout');
  t.match(printed, /\| Pilot \(over-fitting regime\) \| – +\| – +\| not part of this report/);
  const nowhere = path.join(root, 'nowhere.md');
  await reportCli(['--main', path.join(root, 'nowhere'), '--out', nowhere]);
  t.match(fs.readFileSync(nowhere, 'utf8'), /\| Main study +\| `nowhere` +\| – +\| not run yet \(no sweep\.json\) \| 0 +\|/, 'a missing sweep is reported, not an error');
  await t.rejects(reportCli([]), /no sweep given/);
  await t.rejects(reportCli(['runs/x']), /unexpected argument runs\/x: name each sweep with its option/);
});

t.test('sweeps that have not run: the report says so, and the copy refuses to replace a folder that is not a copy', async (t) => {
  const root = t.testdir();
  const runs = path.join(root, 'runs');
  await fakeSweep(path.join(runs, 'repro-overfit'), paperLike, mainSpecs.slice(0, 6), 'cigl sweep --preset repro-overfit', { curves: mainCurves });
  const assets = path.join(root, 'docs', 'reproduction');
  const out = path.join(root, 'docs', 'REPRODUCTION.md');
  const notes: string[] = [];
  const stderr = { write: (s: string) => (notes.push(s), true) } as unknown as NodeJS.WritableStream;
  await reportCli([...cliArgs(root), '--assets', assets, '--out', out], process.stdout, stderr);
  const md = fs.readFileSync(out, 'utf8');
  t.match(md, /\| Pilot \(over-fitting regime\) \| `reproduction\/overfit-pilot` +\| – +\| not run yet \(no sweep\.json in the sweep folder nor in its copy\) \| 0 +\|/);
  t.match(md, /## Pilot: finding the over-fitting regime\n\n_The pilot has not run yet \(not run yet/);
  t.match(md, /## Second setting\n\n_Not run yet/);
  t.match(md, /CigL ran with p = \(no CigL run\); the validation sweep over p has not run yet/);
  t.match(md, /- Over-fitting regime \(pilot\): no pilot run with per-epoch curves\./);
  t.match(md, /Claim \(2\), .*: cannot be tested here: the sweep has no RigL and CigL runs at a common sparsity\./, 'the partial main study has only dense and RigL');
  t.equal(notes.filter((n) => /and no earlier copy in .*; the report says it has not run/.test(n)).length, 3);

  fs.mkdirSync(path.join(root, 'precious', 'repro-overfit'), { recursive: true });
  fs.writeFileSync(path.join(root, 'precious', 'repro-overfit', 'notes.txt'), 'keep me');
  await t.rejects(
    reportCli(['--main', path.join(runs, 'repro-overfit'), '--assets', path.join(root, 'precious'), '--out', out]),
    /refusing to replace .*precious\/repro-overfit with the copy of .*: it is neither empty nor an earlier copy \(no sweep\.json\)/,
  );
  t.equal(fs.readFileSync(path.join(root, 'precious', 'repro-overfit', 'notes.txt'), 'utf8'), 'keep me');
  await t.rejects(reportCli(['--main', path.join(runs, 'repro-overfit'), '--second', path.join(root, 'other', 'repro-overfit'), '--assets', assets]), /main and second would both be copied to/);
});

t.test('paths are made relative to the checkout that holds the sweep, in values and in free text', async (t) => {
  const root = path.join(path.sep, 'machine', 'checkout');
  const value = {
    runsDir: path.join(root, 'runs', 'x'),
    data: path.join(path.sep, 'machine', 'shared', 'datasets', 'cifar10'),
    nested: [{ file: path.join(root, 'runs', 'x', 'a', 'summary.json') }, 'relative/kept', 3, null, true],
    command: `cigl sweep --preset ${root}/presets/p.yaml --data.path ${path.sep}machine${path.sep}shared${path.sep}d`,
    itself: root,
  };
  t.same(relativePaths(value, root), {
    runsDir: 'runs/x',
    data: '../shared/datasets/cifar10',
    nested: [{ file: 'runs/x/a/summary.json' }, 'relative/kept', 3, null, true],
    command: 'cigl sweep --preset presets/p.yaml --data.path ../shared/d',
    itself: '.',
  });
  t.equal(checkoutRoot(path.join(repoRoot, 'docs', 'reproduction', 'x')), repoRoot, 'the cigl checkout above a folder');
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-report-'));
  t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
  t.equal(checkoutRoot(outside), outside, 'no checkout above: the folder itself');
});

t.test('the p chosen on validation, with a looser tolerance', async (t) => {
  const root = t.testdir();
  const pSweep = await fakeSweep(path.join(root, 'p'), byRate, pSpecs, 'cigl sweep --preset repro-overfit-p');
  const choice = chooseRandomMaskRate(pSweep, '15');
  t.same(choice.rates.map((r) => r.p), [0.01, 0.05, 0.1]);
  t.equal(choice.chosen, 0.05);
  t.equal(choice.split, 'validation');
  t.equal(chooseRandomMaskRate(pSweep, '15', 0.05).chosen, 0.1, 'a looser accuracy tolerance admits p = 0.1');
});

t.test('the study table names unfinished runs that something happened to and counts the pending ones', async (t) => {
  const runs = [
    { runName: 'rigl-d0.1-s0', state: 'running' },
    { runName: 'cigl-d0.1-s0', state: 'failed' },
    { runName: 'dense-d1-s1', state: 'pending' },
    { runName: 'rigl-d0.1-s1', state: 'pending' },
  ];
  t.equal(unfinishedRuns(runs), 'rigl-d0.1-s0 (running), cigl-d0.1-s0 (failed), 2 pending');
  t.equal(unfinishedRuns(runs.slice(2)), '2 pending');
  t.equal(unfinishedRuns([]), '');
});
