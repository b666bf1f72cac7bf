import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { tableFromIPC } from 'apache-arrow';
import pl from 'nodejs-polars';
import type { RunSummary, StageResult } from '../../src/sinks/summary';
import {
  compareRuns,
  comparisonMarkdown,
  formatSparsity,
  formatStats,
  headlineResult,
  labelOf,
  meanStd,
  sweepRunName,
  writeComparison,
} from '../../src/sweep/comparison';

function run(label: string, method: string, density: number, seed: number, results: StageResult[]): RunSummary {
  return {
    runName: sweepRunName(label, density, seed),
    runDir: `/runs/${label}`,
    configHash: `hash-${label}-${density}-${seed}`,
    method,
    model: 'cnn',
    targetDensity: density,
    seed,
    split: 'test',
    results,
    layers: [],
    outputs: {},
    steps: 10 + seed,
    wallTimeMs: 1000 * (seed + 1),
  };
}

// RigL at 90%: ECE 0.03, 0.05, 0.04 over seeds 0..2 → mean 0.04, sample std 0.01; accuracy 0.80, 0.82, 0.84 → 0.82 ± 0.02.
const rigl = [0, 1, 2].map((s) =>
  run('rigl', 'rigl', 0.1, s, [
    { stage: 'final', accuracy: [0.8, 0.82, 0.84][s], ece: { '15': [0.03, 0.05, 0.04][s], '10': [0.02, 0.02, 0.05][s] }, nll: [0.5, 0.7, 0.6][s], brier: [0.2, 0.3, 0.4][s] },
    { stage: 'after temperature scaling', accuracy: [0.8, 0.82, 0.84][s], ece: { '15': 0.01, '10': 0.01 }, temperature: 1.4 },
  ]),
);
// CigL at 90%, two seeds, no Brier; NLL missing on one seed.
const cigl = [0, 1].map((s) =>
  run('cigl', 'cigl', 0.1, s, [
    { stage: 'before averaging', accuracy: 0.8, ece: { '15': 0.05, '10': 0.04 } },
    { stage: 'after averaging', accuracy: [0.83, 0.85][s], ece: { '15': [0.02, 0.03][s], '10': 0.02 }, ...(s === 0 ? { nll: 0.4 } : {}) },
    { stage: 'after temperature scaling', accuracy: 0.84, ece: { '15': 0.01, '10': 0.01 }, temperature: 1.2 },
  ]),
);
const dense = [run('dense', 'dense', 1, 0, [{ stage: 'final', accuracy: 0.9, ece: { '15': 0.025, '10': 0.02 } }])];
const ablation = [run('cigl-no-averaging', 'cigl', 0.1, 0, [{ stage: 'final', accuracy: 0.81, ece: { '15': 0.035, '10': 0.03 } }])];
const all = [...rigl, ...cigl, ...ablation, ...dense];

t.test('mean and sample standard deviation, by hand', async (t) => {
  t.same(meanStd([0.1, 0.2, 0.3]).n, 3);
  t.ok(Math.abs(meanStd([0.1, 0.2, 0.3]).mean - 0.2) < 1e-15);
  t.ok(Math.abs(meanStd([0.1, 0.2, 0.3]).std! - 0.1) < 1e-15, 'divides by n − 1');
  t.ok(Math.abs(meanStd([1, 2, 3, 4]).std! - Math.sqrt(5 / 3)) < 1e-15);
  t.same(meanStd([0.7]), { n: 1, mean: 0.7 }, 'one value: no std');
  t.throws(() => meanStd([]), /no values/);
});

t.test('labels, headline stage and formatting helpers', async (t) => {
  t.equal(sweepRunName('cigl-no-random-mask', '0.1', '2'), 'cigl-no-random-mask-d0.1-s2');
  t.equal(labelOf('cigl-no-random-mask-d0.1-s2', 'cigl'), 'cigl-no-random-mask');
  t.equal(labelOf('cigl-d1e-2-s0', 'cigl'), 'cigl');
  t.equal(labelOf('cigl-cnn-d0.1-s0-20250101-120000', 'cigl'), 'cigl', 'a train-generated name falls back to the method');
  t.equal(headlineResult(cigl[0])?.stage, 'after averaging', 'the last stage before temperature scaling');
  t.equal(headlineResult({ results: [{ stage: 'only scaled', accuracy: 1, ece: {}, temperature: 2 }] })?.stage, 'only scaled');
  t.equal(formatSparsity(0.1), '90%');
  t.equal(formatSparsity(0.05), '95%');
  t.equal(formatSparsity(1), '0%');
  t.equal(formatSparsity(0.125), '87.5%');
  t.equal(formatStats({ n: 3, mean: 0.82, std: 0.02 }, 2, 100), '82.00 ± 2.00');
  t.equal(formatStats({ n: 1, mean: 0.0312 }, 4), '0.0312');
});

t.test('groups by label × density, dense first, with mean ± std per stage and metric', async (t) => {
  const groups = compareRuns(all);
  t.same(groups.map((g) => [g.label, g.density, g.seeds]), [
    ['dense', 1, [0]],
    ['rigl', 0.1, [0, 1, 2]],
    ['cigl', 0.1, [0, 1]],
    ['cigl-no-averaging', 0.1, [0]],
  ]);
  const r = groups[1].headline;
  t.equal(r.stage, 'final');
  t.equal(r.accuracy.n, 3);
  t.ok(Math.abs(r.accuracy.mean - 0.82) < 1e-12 && Math.abs(r.accuracy.std! - 0.02) < 1e-12, 'accuracy 0.82 ± 0.02');
  t.ok(Math.abs(r.ece['15'].mean - 0.04) < 1e-12 && Math.abs(r.ece['15'].std! - 0.01) < 1e-12, 'ECE15 0.04 ± 0.01');
  t.ok(Math.abs(r.ece['10'].mean - 0.03) < 1e-12 && Math.abs(r.ece['10'].std! - Math.sqrt(0.0003)) < 1e-12, 'ECE10 0.03 ± √0.0003');
  t.ok(Math.abs(r.nll!.mean - 0.6) < 1e-12 && Math.abs(r.brier!.mean - 0.3) < 1e-12);
  const c = groups[2];
  t.same(c.stages.map((s) => [s.stage, s.calibrated]), [['before averaging', false], ['after averaging', false], ['after temperature scaling', true]]);
  t.equal(c.headline.stage, 'after averaging');
  t.same(c.headline.nll, { n: 1, mean: 0.4 }, 'NLL over the seeds that report it');
  t.equal(c.headline.brier, undefined, 'no Brier when no run reports it');
  t.throws(() => compareRuns([rigl[0], { ...rigl[1], model: 'resnet20' }]), /rigl-d0\.1-s0 and rigl-d0\.1-s1 share label rigl and density 0\.1 but differ in model \(cnn vs resnet20\)/);
});

t.test('comparison.md holds the headline table and every stage', async (t) => {
  const md = comparisonMarkdown(compareRuns(all));
  t.match(md, /\| Method +\| Sparsity \| Stage +\| Seeds \| Accuracy \(%\) \| +ECE \(15 bins\) \| +ECE \(10 bins\) \| +NLL \| +Brier \| ECE \(15 bins\) at T \|\n\|-+\|-+:\|/);
  t.match(md, /\| rigl +\| +90% \| final +\| +3 \| +82\.00 ± 2\.00 \| +0\.0400 ± 0\.0100 \| +0\.0300 ± 0\.0173 \| +0\.6000 ± 0\.1000 \| +0\.3000 ± 0\.1000 \| +0\.0100 ± 0\.0000 \|/);
  t.match(md, /\| cigl +\| +90% \| after averaging +\| +2 \| +84\.00 ± 1\.41 \| +0\.0250 ± 0\.0071 \|/);
  t.match(md, /\| dense +\| +0% \| final +\| +1 \| +90\.00 \| +0\.0250 \|/);
  t.match(md, /\| cigl-no-averaging \| +90% \|/);
  t.match(md, /\| cigl +\| +90% \| after temperature scaling \| +2 \| +84\.00 ± 0\.00 \|/);
  t.equal(comparisonMarkdown([]), '# Sweep comparison\n\nNo finished runs yet.\n');
});

t.test('comparison.arrow and runs.arrow open in apache-arrow and in polars with the same values', async (t) => {
  const dir = t.testdir();
  writeComparison(dir, all);
  const bytes = fs.readFileSync(path.join(dir, 'comparison.arrow'));
  const table = tableFromIPC(bytes);
  t.same(table.schema.fields.map((f) => f.name), ['label', 'method', 'density', 'sparsity', 'stage', 'calibrated', 'headline', 'metric', 'runs', 'mean', 'std']);
  const rows = table.toArray().map((r) => r.toJSON());
  const riglEce = rows.find((r) => r.label === 'rigl' && r.metric === 'ece15' && r.stage === 'final')!;
  t.equal(riglEce.runs, 3);
  t.ok(Math.abs(riglEce.mean - 0.04) < 1e-12 && Math.abs(riglEce.std - 0.01) < 1e-12);
  t.equal(riglEce.headline, true);
  t.ok(Math.abs(riglEce.sparsity - 0.9) < 1e-12);
  const denseAcc = rows.find((r) => r.label === 'dense' && r.metric === 'accuracy')!;
  t.equal(denseAcc.std, null, 'a single run has a null std');
  t.same([...new Set(rows.map((r) => r.metric))], ['accuracy', 'ece15', 'ece10', 'nll', 'brier']);
  t.notOk(rows.some((r) => r.label === 'cigl' && r.metric === 'brier'), 'no rows for metrics nobody reported');

  const df = pl.readIPC(bytes);
  t.equal(df.height, table.numRows);
  t.same(Array.from(df.getColumn('mean').toArray()), rows.map((r) => r.mean));
  t.same(Array.from(df.getColumn('std').toArray()), rows.map((r) => r.std));
  t.same(Array.from(df.getColumn('label').toArray()), rows.map((r) => r.label));

  const runsBytes = fs.readFileSync(path.join(dir, 'runs.arrow'));
  const runs = tableFromIPC(runsBytes);
  t.same(runs.schema.fields.map((f) => f.name), [
    'run_name', 'label', 'method', 'model', 'density', 'seed', 'split', 'stage', 'calibrated', 'temperature', 'accuracy', 'ece15', 'ece10', 'nll', 'brier', 'steps', 'wall_time_ms', 'config_hash',
  ]);
  t.equal(runs.numRows, all.reduce((n, s) => n + s.results.length, 0), 'one row per run and stage');
  const runsDf = pl.readIPC(runsBytes);
  const scaled = runsDf.filter(pl.col('run_name').eq(pl.lit('cigl-d0.1-s0')).and(pl.col('calibrated')));
  t.same(scaled.toRecords().map((r) => [r.stage, r.temperature, r.ece15, r.brier]), [['after temperature scaling', 1.2, 0.01, null]]);
  t.same(Array.from(runsDf.getColumn('label').toArray()).slice(-2), ['cigl-no-averaging', 'dense']);
});
