import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import type { RunConfig } from '../../src/cli/config';
import { checkClaims } from '../../src/sweep/claims';
import { compareRuns } from '../../src/sweep/comparison';
import { chooseRandomMaskRate, PAPER_TABLE3, readSweepArtefacts, reproductionReport } from '../../src/sweep/report';
import { main as reportCli } from '../../src/sweep/report-cli';
import { runSweep } from '../../src/sweep/run-sweep';
import { fakeRunOne, sweepConfigs, sweepJob, type Numbers, type RunSpec } from './fake-sweep';

const mainSpecs: RunSpec[] = [
  ...[0, 1].map((seed) => ({ method: 'dense', density: 1, seed })),
  ...['rigl', 'cigl'].flatMap((method) => [0.1, 0.05].flatMap((density) => [0, 1].map((seed) => ({ method, density, seed })))),
  ...[0, 1].map((seed) => ({ method: 'cigl', label: 'cigl-no-random-mask', density: 0.1, seed, set: { 'sparse.randomMaskRate': '0' } })),
  ...[0, 1].map((seed) => ({ method: 'cigl', label: 'cigl-no-averaging', density: 0.1, seed, set: { 'average.enabled': 'false' } })),
];

const label = (c: RunConfig) => /^(.+)-d[^-]+-s\d+$/.exec(c.output.runName!)![1];

/** The paper's picture: RigL less calibrated than dense and more with sparsity; CigL better and as accurate. */
const paperLike: Numbers = (c) => {
  const noise = c.seed * 0.002;
  const sparsity = 1 - c.sparse.density;
  const ece = { dense: 0.02, rigl: 0.03 + 0.1 * (sparsity - 0.9), cigl: 0.02, 'cigl-no-random-mask': 0.026, 'cigl-no-averaging': 0.028 }[label(c)]!;
  const accuracy = { dense: 0.9, rigl: 0.85, cigl: 0.86, 'cigl-no-random-mask': 0.855, 'cigl-no-averaging': 0.85 }[label(c)]!;
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

async function fakeSweep(dir: string, numbers: Numbers, specs: RunSpec[] = mainSpecs, command = 'cigl sweep --preset repro-cifar10') {
  const outcome = await runSweep(sweepJob(dir, sweepConfigs(dir, specs), undefined, command).job, fakeRunOne(numbers));
  if (outcome.failures?.length) throw new Error(outcome.failures[0].error);
  return readSweepArtefacts(dir);
}

t.test('claims hold: the report says so, with the table, plot, diagrams, command, cost and the paper', async (t) => {
  const root = t.testdir();
  const sweep = await fakeSweep(path.join(root, 'sweep'), paperLike);
  t.equal(sweep.summaries.length, 14);
  const md = reproductionReport(sweep, { outDir: root, reportCommand: 'node dist/src/sweep/report-cli.js sweep' });

  t.match(md, /Claim \(1\), RigL's ECE is above the dense model's \(ECE with 15 bins\): \*\*holds\*\* at every sparsity tested \(90%, 95%\)\./);
  t.match(md, /Claim \(2\), CigL's ECE is below RigL's at the same sparsity, with accuracy no worse \(ECE with 15 bins\): \*\*holds\*\* at every sparsity tested \(90%, 95%\)\./);
  t.match(md, /holds at 95%: RigL 0\.0360 ± 0\.0014 vs dense 0\.0210 ± 0\.0014 \(Δ = \+0\.0150, more than two standard errors \(0\.0028\)\)/);
  t.match(md, /With 10 bins: claim \(1\) gives the same verdict \(holds\)/);
  t.match(md, /\| rigl +\| +95% \| +2 \| +85\.10 ± 0\.14 \| +0\.0360 ± 0\.0014 \|/, 'mean ± std per method × sparsity');
  t.match(md, /\| cigl-no-random-mask \| +90% \| +2 \|/, 'ablation rows');
  t.match(md, /CigL without the random mask \(p = 0\) at 90%: ECE 0\.0270 ± 0\.0014 against 0\.0210 ± 0\.0014 for full CigL \(higher\), accuracy −0\.50 points\./);
  t.match(md, /CigL without weight and mask averaging at 90%: ECE 0\.0290 ± 0\.0014 against 0\.0210 ± 0\.0014/);
  t.match(md, /After temperature scaling \(fitted on the validation split\):/);
  t.match(md, /!\[ECE vs sparsity\]\(sweep\/ece-vs-sparsity\.png\)/);
  t.match(md, /## Reliability diagrams \(dense, and RigL and CigL at 95% sparsity\)/);
  for (const run of ['dense-d1-s0', 'rigl-d0.05-s0', 'cigl-d0.05-s0']) t.ok(md.includes(`](sweep/${run}/reliability.png)`), `diagram of ${run}`);
  t.match(md, /Command: `cigl sweep --preset repro-cifar10`/);
  t.match(md, /Cost: 14m00s of training wall time over 14 runs \(1m00s per run\)\./, 'wall-clock: the sum of the summaries');
  t.match(md, /Runs differ only in: .*sparse\.method/);
  t.match(md, /\| rigl-d0\.1-s0 +\| completed \| [0-9a-f]{16} \|/);
  t.match(md, /\| 90% +\| paper, ResNet-50 +\| +93\.84 \| +94\.56 \| +0\.0441 \| +0\.0361 \| +−18\.1% \|/, 'the paper\'s numbers with the relative ECE change');
  t.match(md, /\| +\| this sweep, cnn +\| +85\.10 ± 0\.14 \| +86\.10 ± 0\.14 \| 0\.0305 ± 0\.0007 \| 0\.0205 ± 0\.0007 \| +−32\.8% \|/, 'ours beside it, 10-bin ECE');
  t.match(md, /CigL ran with p = 0\.01; no validation sweep over p was given/);
  t.ok(md.includes(PAPER_TABLE3.citation));
});

t.test('claims that do not hold are stated as such', async (t) => {
  const root = t.testdir();
  const sweep = await fakeSweep(path.join(root, 'sweep'), notLikePaper);
  const md = reproductionReport(sweep, { outDir: root });
  t.match(md, /Claim \(1\), RigL's ECE is above the dense model's \(ECE with 15 bins\): \*\*holds only partly\*\*: at 95%, not at 90%\./);
  t.match(md, /does not hold at 90%: RigL 0\.0310 ± 0\.0014 vs dense 0\.0355 ± 0\.0007 \(Δ = −0\.0045/);
  t.match(md, /Claim \(2\), .*: \*\*holds only partly\*\*: at 90%, not at 95%\./);
  t.match(md, /does not hold at 95%: ECE CigL .* lower; accuracy CigL 80\.05 ± 0\.07% vs RigL 85\.10 ± 0\.14% \(Δ = −5\.05 points, more than two standard errors .*\)\), worse/);

  // Nothing holds: no sparsity where either claim is true.
  const groups = compareRuns(sweep.summaries.filter((s) => s.targetDensity !== 0.05));
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

t.test('the p chosen on validation is reported, and a main sweep that used another p is flagged', async (t) => {
  const root = t.testdir();
  const main = await fakeSweep(path.join(root, 'main'), paperLike);
  const pSpecs: RunSpec[] = [0.01, 0.05, 0.1].flatMap((p) =>
    [0, 1].map((seed) => ({ method: 'cigl', label: `cigl-p${p}`, density: 0.1, seed, set: { 'sparse.randomMaskRate': String(p), 'calibrate.split': 'validation', 'calibrate.temperatureScaling': 'false' } })),
  );
  // p = 0.1 has the lowest ECE but loses 2 points of accuracy; p = 0.05 is within 0.5 points of the best and lower than 0.01.
  const byRate: Numbers = (c) => {
    const p = c.sparse.randomMaskRate;
    const ece = p === 0.01 ? 0.03 : p === 0.05 ? 0.022 : 0.012;
    const accuracy = p === 0.01 ? 0.86 : p === 0.05 ? 0.857 : 0.84;
    return { accuracy: accuracy + c.seed * 0.001, ece15: ece, ece10: ece, wallTimeMs: 30_000 };
  };
  const pSweep = await fakeSweep(path.join(root, 'p'), byRate, pSpecs, 'cigl sweep --preset repro-p-sweep');
  const choice = chooseRandomMaskRate(pSweep, '15');
  t.same(choice.rates.map((r) => r.p), [0.01, 0.05, 0.1]);
  t.equal(choice.chosen, 0.05);
  t.equal(choice.split, 'validation');
  t.equal(chooseRandomMaskRate(pSweep, '15', 0.05).chosen, 0.1, 'a looser accuracy tolerance admits p = 0.1');

  const md = reproductionReport(main, { outDir: root, pSweep });
  t.match(md, /Chosen on the \*\*validation\*\* split/);
  t.match(md, /\| +0\.05 \| +2 \| 85\.75 ± 0\.07 \| +0\.0220 ± 0\.0000 \| yes +\|/);
  t.match(md, /\*\*The CigL runs above used p = 0\.01, not the chosen p = 0\.05\*\*/);
  t.match(md, /Cost of the p sweep: 3m00s of training wall time over 6 runs/);
  t.match(md, /The p sweep: `cigl sweep --preset repro-p-sweep`/);
});

t.test('report-cli copies the artefacts next to the report and the copy regenerates the same report', async (t) => {
  const root = t.testdir();
  const sweepDir = path.join(root, 'runs', 'repro');
  await fakeSweep(sweepDir, paperLike);
  const out = path.join(root, 'docs', 'REPRODUCTION.md');
  const assets = path.join(root, 'docs', 'reproduction');
  await reportCli([sweepDir, '--assets', assets, '--out', out]);
  const md = fs.readFileSync(out, 'utf8');
  t.match(md, /!\[ECE vs sparsity\]\(reproduction\/ece-vs-sparsity\.png\)/, 'links point at the copies');
  t.ok(md.includes('](reproduction/cigl-d0.05-s0/reliability.png)'));
  for (const f of ['sweep.json', 'comparison.md', 'comparison.arrow', 'runs.arrow', 'ece-vs-sparsity.svg', 'ece-vs-sparsity.png', 'cigl-d0.1-s1/summary.json', 'cigl-d0.1-s1/config.json', 'cigl-d0.1-s1/reliability.png']) {
    t.ok(fs.existsSync(path.join(assets, f)), f);
  }
  t.notOk(fs.existsSync(path.join(assets, 'cigl-d0.1-s1', 'checkpoints')), 'bulky run outputs stay behind');
  // The copy is itself a sweep directory: the report regenerated from it has the same numbers.
  const again = path.join(root, 'docs', 'again.md');
  await reportCli([assets, '--out', again]);
  const body = (text: string) => text.split('\n').filter((l) => !l.startsWith('_Generated'));
  t.same(body(fs.readFileSync(again, 'utf8')), body(md));
  let printed = '';
  await reportCli([assets], { write: (s: string) => ((printed += s), true) } as unknown as NodeJS.WritableStream);
  t.match(printed, /^# Reproducing CigL on CIFAR-10\n/, 'without --out the report goes to stdout');
  await t.rejects(reportCli([path.join(root, 'nowhere')]), /is not a sweep directory: cannot read .*nowhere\/sweep\.json \(ENOENT\)/);
  await t.rejects(reportCli([]), /expected one sweep directory, got 0/);
});
