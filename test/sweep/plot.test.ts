import sharp from 'sharp';
import t from 'tap';
import type { RunSummary } from '../../src/sinks/summary';
import { compareRuns, sweepRunName } from '../../src/sweep/comparison';
import { eceVsSparsityPng, eceVsSparsitySvg, niceTicks } from '../../src/sweep/plot';
import { checkWellFormedXml } from '../calibrate/well-formed-xml';

function summary(label: string, method: string, density: number, seed: number, ece: number): RunSummary {
  return {
    runName: sweepRunName(label, density, seed),
    runDir: '/r',
    configHash: 'h',
    method,
    model: 'cnn',
    targetDensity: density,
    seed,
    split: 'test',
    results: [{ stage: 'final', accuracy: 0.8, ece: { '15': ece, '10': ece / 2 } }],
    layers: [],
    outputs: {},
  };
}

const summaries = [
  ...[0, 1].map((s) => summary('dense', 'dense', 1, s, 0.02 + s * 0.002)),
  ...[0.1, 0.05, 0.01].flatMap((d) => [0, 1].map((s) => summary('rigl', 'rigl', d, s, 0.03 + (1 - d) * 0.02 + s * 0.004))),
  ...[0.1, 0.05, 0.01].flatMap((d) => [0, 1].map((s) => summary('cigl', 'cigl', d, s, 0.02 + s * 0.003))),
  summary('cigl <no-avg> & "x"', 'cigl', 0.1, 0, 0.025),
];

t.test('nice ticks cover the range with round steps', async (t) => {
  t.same(niceTicks(0.058), [0, 0.02, 0.04, 0.06]);
  t.same(niceTicks(1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  t.same(niceTicks(0.011), [0, 0.0025, 0.005, 0.0075, 0.01, 0.0125]);
  t.same(niceTicks(0), [0, 1]);
});

t.test('the SVG is well-formed with one line per sparse label, error bars, ticks at the swept sparsities and a legend', async (t) => {
  const groups = compareRuns(summaries);
  const svg = eceVsSparsitySvg(groups, { title: 'ECE & sparsity', width: 800, height: 480 });
  const names = checkWellFormedXml(svg);
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="800" height="480"/);
  t.equal(names.filter((n) => n === 'polyline').length, 2, 'RigL and CigL lines (the single-density ablation is a point)');
  // A point per group on the plot plus one marker per label in the legend.
  t.equal(names.filter((n) => n === 'circle').length, groups.length + 4);
  // Error bars (a bar and two caps) where two seeds give a spread: dense, 3 RigL, 3 CigL; none for one seed.
  const solid = svg.split('\n').filter((l) => l.startsWith('<line') && l.includes('stroke-width="1.5"') && !l.includes('dasharray'));
  t.equal(solid.length, 7 * 3);
  t.ok(svg.includes('stroke-dasharray="7 5"'), 'the dense reference line is dashed');
  for (const tick of ['>0%<', '>90%<', '>95%<', '>99%<']) t.ok(svg.includes(tick), `tick ${tick}`);
  t.notOk(svg.includes('>80%<'), 'no tick at an unswept sparsity');
  t.ok(svg.includes('>cigl &lt;no-avg&gt; &amp; &quot;x&quot;</text>'), 'labels are escaped');
  t.ok(svg.includes('>ECE &amp; sparsity</text>'));
  t.ok(svg.includes('ECE (15 bins), before temperature scaling; mean ± sample std over 1–2 seeds'));
  t.ok(svg.includes('>Sparsity (axis: log of 1 / density)</text>') && svg.includes('>ECE (15 bins)</text>'), 'axis labels');
  // The RigL line rises from left to right: its y (SVG grows downward) falls.
  const rigl = /<polyline points="([^"]+)"[^>]*stroke="#d1495b"/.exec(svg)![1].split(' ').map((p) => p.split(',').map(Number));
  t.ok(rigl[0][0] < rigl[1][0] && rigl[1][0] < rigl[2][0], 'x increases with sparsity');
  t.ok(rigl[0][1] > rigl[1][1] && rigl[1][1] > rigl[2][1], 'RigL ECE rises with sparsity');

  const ten = eceVsSparsitySvg(groups, { bins: '10' });
  t.ok(ten.includes('>ECE (10 bins)</text>'));
  t.throws(() => eceVsSparsitySvg(groups, { bins: '20' }), /no run reports ECE with 20 bins/);
  t.throws(() => eceVsSparsitySvg(groups, { width: 100 }), /width must be an integer number of pixels in \[300, 8000\], got 100/);
});

t.test('the PNG has the requested size and is not blank', async (t) => {
  const groups = compareRuns(summaries);
  for (const [width, height] of [[820, 500], [640, 400]]) {
    const png = await eceVsSparsityPng(groups, { width, height });
    const meta = await sharp(png).metadata();
    t.equal(meta.format, 'png');
    t.same([meta.width, meta.height], [width, height]);
    const stats = await sharp(png).stats();
    t.ok(stats.channels[0].min < 80 && stats.channels[2].max > 150, 'dark ink and coloured lines present');
  }
});
