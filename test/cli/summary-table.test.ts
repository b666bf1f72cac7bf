import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { formatSummary, formatSweepTable, formatTable } from '../../src/report/summary-table';
import { compareRuns } from '../../src/sweep/comparison';
import { writeSummary, type RunSummary } from '../../src/sinks/summary';

const summary: RunSummary = {
  runName: 'cigl-cnn',
  runDir: '/runs/cigl-cnn',
  configHash: '0123456789abcdef0123',
  method: 'cigl',
  model: 'cnn',
  targetDensity: 0.1,
  seed: 0,
  split: 'test',
  headline: 'after averaging',
  steps: 390,
  wallTimeMs: 125_000,
  results: [
    { stage: 'live', accuracy: 0.7012, ece: { '15': 0.0412, '10': 0.0398 }, nll: 0.91 },
    { stage: 'after averaging', accuracy: 0.7134, ece: { '15': 0.0221, '10': 0.0215 }, nll: 0.85 },
    { stage: 'after temperature scaling', accuracy: 0.7134, ece: { '15': 0.0153, '10': 0.0149 }, nll: 0.83, temperature: 1.2345, scaled: 'after averaging' },
  ],
  layers: [
    { layer: 'conv1', size: 864, active: 432 },
    { layer: 'fc', size: 10000, active: 655 },
  ],
  density: { masked: { weights: 10864, active: 1087, density: 1087 / 10864 }, all: { weights: 11000, active: 1223, density: 1223 / 11000 } },
  outputs: { metrics: '/runs/cigl-cnn/metrics.arrow' },
  modelSize: { fileBytes: 20_000, denseBytes: 200_000 },
};

t.test('plain-text summary: results, per-layer densities, outputs', async (t) => {
  const text = formatSummary(summary, 'text');
  t.match(text, /^Run cigl-cnn: cigl, cnn, density 0\.1 of masked layers, 0\.1112 of all parameters, seed 0, 390 steps, 2m05s\n/);
  const expectedResults = [
    'Stage                       Accuracy  ECE (15 bins)  ECE (10 bins)     NLL      T  ECE (15 bins) at T  NLL at T',
    '--------------------------  --------  -------------  -------------  ------  -----  ------------------  --------',
    'live                          70.12%         0.0412         0.0398  0.9100',
    'after averaging (headline)    71.34%         0.0221         0.0215  0.8500  1.234              0.0153    0.8300',
    'Headline: after averaging, before temperature scaling; T: the temperature fitted on the validation split, with the same model\'s numbers at T.',
  ].join('\n');
  t.ok(text.includes(expectedResults), 'results table');
  t.ok(
    text.includes([
      'Layer                  Weights  Active  Density',
      '---------------------  -------  ------  -------',
      'conv1                      864     432   0.5000',
      'fc                       10000     655   0.0655',
      'total, masked layers     10864    1087   0.1001',
      'total, all parameters    11000    1223   0.1112',
    ].join('\n')),
    'layer table with both totals, labelled',
  );
  t.match(text, /sparse model size +19\.5 KiB \(10\.0% of dense 195\.3 KiB\)/);
  t.match(text, /config hash +0123456789abcdef\n/);
});

t.test('Markdown summary renders as pipe tables', async (t) => {
  const md = formatSummary(summary, 'markdown');
  t.match(md, /^## Run cigl-cnn\n/);
  t.match(md, /### Results on the test split\n\| Stage +\| Accuracy \| ECE \(15 bins\) \| ECE \(10 bins\) \| +NLL \| +T \| ECE \(15 bins\) at T \| NLL at T \|\n\|-+\|-+:\|-+:\|-+:\|-+:\|-+:\|-+:\|-+:\|\n/);
  t.match(md, /\| total, masked layers +\| +10864 \| +1087 \| +0\.1001 \|/);
  t.match(md, /\| total, all parameters +\| +11000 \| +1223 \| +0\.1112 \|/);
});

t.test('formatTable aligns columns; summary.json round-trips', async (t) => {
  t.equal(formatTable(['a', 'num'], [['xyz', '1'], ['q', '22']], 'text', ['l', 'r']), 'a    num\n---  ---\nxyz    1\nq     22\n');
  t.equal(formatTable(['a', 'num'], [['xyz', '1']], 'markdown', ['l', 'r']), '| a   | num |\n|-----|----:|\n| xyz |   1 |\n');
  const file = path.join(t.testdir(), 'summary.json');
  writeSummary(file, summary);
  t.same(JSON.parse(fs.readFileSync(file, 'utf8')), summary);
});

t.test('the sweep table shows each run\'s headline (as comparison.md and the plot do), temperature scaling in columns of its own', async (t) => {
  const rigl: RunSummary = {
    ...summary,
    runName: 'rigl-d0.1-s0',
    method: 'rigl',
    headline: undefined,
    results: [
      { stage: 'live', accuracy: 0.69, ece: { '15': 0.05, '10': 0.04 } },
      { stage: 'after temperature scaling', accuracy: 0.69, ece: { '15': 0.02, '10': 0.01 }, temperature: 1.5 },
    ],
  };
  const text = formatSweepTable([summary, rigl], 'text');
  t.equal(
    text,
    [
      'Method  Density  Seed  Stage            Accuracy  ECE (15 bins)  ECE (10 bins)      T  ECE (15 bins) at T',
      '------  -------  ----  ---------------  --------  -------------  -------------  -----  ------------------',
      'cigl        0.1     0  after averaging    71.34%         0.0221         0.0215  1.234              0.0153',
      'rigl        0.1     0  live               69.00%         0.0500         0.0400  1.500              0.0200',
      '',
    ].join('\n'),
  );
  const headlines = compareRuns([summary, rigl]).map((g) => [g.label, g.headline.stage, g.headline.ece['15'].mean]);
  t.same(headlines, [['cigl', 'after averaging', 0.0221], ['rigl', 'live', 0.05]], 'the same headline as the sweep comparison');
});
