import sharp from 'sharp';
import t from 'tap';
import type { RunSummary } from '../../src/sinks/summary';
import { compareRuns, sweepRunName } from '../../src/sweep/comparison';
import { niceRange } from '../../src/sweep/chart';
import { niceTicks, sparsityFigurePng, sparsityFigureSvg } from '../../src/sweep/plot';
import { checkWellFormedXml } from '../calibrate/well-formed-xml';

function summary(label: string, method: string, density: number, seed: number, ece: number, accuracy = 0.8): RunSummary {
  return {
    runName: sweepRunName(label, density, seed),
    runDir: '/r',
    configHash: 'h',
    method,
    model: 'cnn',
    targetDensity: density,
    seed,
    split: 'test',
    results: [{ stage: 'final', accuracy, ece: { '15': ece, '10': ece / 2 } }],
    layers: [],
    outputs: {},
  };
}

const summaries = [
  ...[0, 1].map((s) => summary('dense', 'dense', 1, s, 0.02 + s * 0.002)),
  ...[0.1, 0.05, 0.01].flatMap((d) => [0, 1].map((s) => summary('rigl', 'rigl', d, s, 0.03 + (1 - d) * 0.02 + s * 0.004, 0.85 - (1 - d) * 0.1 + s * 0.01))),
  ...[0.1, 0.05, 0.01].flatMap((d) => [0, 1].map((s) => summary('cigl', 'cigl', d, s, 0.02 + s * 0.003))),
  summary('cigl <no-avg> & "x"', 'cigl', 0.1, 0, 0.025),
];

t.test('nice ticks cover the range with round steps', async (t) => {
  t.same(niceTicks(0.058), [0, 0.02, 0.04, 0.06]);
  t.same(niceTicks(1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  t.same(niceTicks(0.011), [0, 0.0025, 0.005, 0.0075, 0.01, 0.0125]);
  t.same(niceTicks(0), [0, 1]);
  t.same(niceRange(0.843, 0.912), [0.84, 0.86, 0.88, 0.9, 0.92], 'a range that does not start at 0');
  t.same(niceRange(3, 20), [0, 5, 10, 15, 20]);
});

t.test('the SVG is well-formed: ECE and accuracy panels, one line per sparse label, error bars, ticks at the swept sparsities and a legend', async (t) => {
  const groups = compareRuns(summaries);
  const svg = sparsityFigureSvg(groups, { title: 'ECE & sparsity', width: 1000, height: 480 });
  const names = checkWellFormedXml(svg);
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="1000" height="480"/);
  t.equal(names.filter((n) => n === 'polyline').length, 2 * 2, 'RigL and CigL lines in each panel (the single-density ablation is a point)');
  // A point per group in each panel plus one marker per label in the legend.
  t.equal(names.filter((n) => n === 'circle').length, 2 * groups.length + 4);
  // Error bars (a bar and two caps) where two seeds give a spread: dense, 3 RigL, 3 CigL in the ECE panel; dense's and CigL's accuracies do not vary.
  const solid = svg.split('\n').filter((l) => l.startsWith('<line') && l.includes('stroke-width="1.5"') && !l.includes('dasharray'));
  t.equal(solid.length, 7 * 3 + 3 * 3);
  t.equal(svg.split('stroke-dasharray="7 5"').length - 1, 2 + 1, 'the dense reference line in each panel, and in the legend');
  for (const tick of ['>0%<', '>90%<', '>95%<', '>99%<']) t.equal(svg.split(tick).length - 1, 2, `tick ${tick} in both panels`);
  t.notOk(svg.includes('>80%<'), 'no tick at an unswept sparsity');
  t.ok(svg.includes('>cigl &lt;no-avg&gt; &amp; &quot;x&quot;</text>'), 'labels are escaped');
  t.ok(svg.includes('>ECE &amp; sparsity</text>'));
  t.ok(svg.includes('before temperature scaling; mean ± sample std over 1–2 seeds'));
  t.ok(svg.includes('>Accuracy (%)</text>') && svg.includes('>ECE (15 bins)</text>') && svg.includes('>Sparsity (axis: log of 1 / density)</text>'), 'axis labels');
  // The RigL line of the ECE panel rises from left to right: its y (SVG grows downward) falls; its accuracy line falls.
  const [ece, accuracy] = [...svg.matchAll(/<polyline points="([^"]+)"[^>]*stroke="#d1495b"/g)].map((m) => m[1].split(' ').map((p) => p.split(',').map(Number)));
  t.ok(ece[0][0] < ece[1][0] && ece[1][0] < ece[2][0], 'x increases with sparsity');
  t.ok(ece[0][1] > ece[1][1] && ece[1][1] > ece[2][1], 'RigL ECE rises with sparsity');
  t.ok(accuracy[0][0] > ece[2][0], 'the accuracy panel is right of the ECE panel');
  t.ok(accuracy[0][1] < accuracy[1][1] && accuracy[1][1] < accuracy[2][1], 'RigL accuracy falls with sparsity');
  t.match(svg, /text-anchor="end">80</, 'accuracy ticks in percent');

  const ten = sparsityFigureSvg(groups, { bins: '10' });
  t.ok(ten.includes('>ECE (10 bins)</text>'));
  t.throws(() => sparsityFigureSvg(groups, { bins: '20' }), /no run reports ECE with 20 bins/);
  t.throws(() => sparsityFigureSvg(groups, { width: 100 }), /width must be an integer number of pixels in \[300, 8000\], got 100/);
});

t.test('the PNG has the requested size and is not blank', async (t) => {
  const groups = compareRuns(summaries);
  for (const [width, height] of [[1100, 500], [640, 400]]) {
    const png = await sparsityFigurePng(groups, { width, height });
    const meta = await sharp(png).metadata();
    t.equal(meta.format, 'png');
    t.same([meta.width, meta.height], [width, height]);
    const stats = await sharp(png).stats();
    t.ok(stats.channels[0].min < 80 && stats.channels[2].max > 150, 'dark ink and coloured lines present');
  }
});
