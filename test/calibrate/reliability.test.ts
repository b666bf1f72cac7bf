import sharp from 'sharp';
import t from 'tap';
import { calibrationMetrics } from '../../src/calibrate/metrics';
import { escapeXml, reliabilityDiagramPng, reliabilityDiagramSvg } from '../../src/calibrate/reliability';
import { Rng } from '../../src/util/rng';
import { checkWellFormedXml } from './well-formed-xml';

function overConfidentReport() {
  const rng = new Rng(1);
  const n = 600;
  const classes = 10;
  const logits = new Float32Array(n * classes);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = rng.nextInt(classes);
    for (let k = 0; k < classes; k++) logits[i * classes + k] = 3 * rng.nextNormal() + (k === labels[i] ? 4 : 0);
  }
  return calibrationMetrics(logits, labels, classes);
}

t.test('the XML checker itself rejects malformed documents', async (t) => {
  t.throws(() => checkWellFormedXml('<svg><rect></svg>'), /closes <rect>/);
  t.throws(() => checkWellFormedXml('<svg a=b/>'), /malformed tag/);
  t.throws(() => checkWellFormedXml('<svg><text>a & b</text></svg>'), /unescaped/);
  t.throws(() => checkWellFormedXml('<svg><text>a < b</text></svg>'), /stray|malformed|unescaped/);
  t.throws(() => checkWellFormedXml('<svg><g>'), /unclosed <svg>, <g>/);
  t.same(checkWellFormedXml('<svg a="1"><text>x &amp; y</text><rect/></svg>'), ['svg', 'text', 'rect']);
});

t.test('the SVG is well-formed, escaped, and draws one bar and one gap per non-empty bin', async (t) => {
  const report = overConfidentReport();
  const ece15 = report.equalWidth[0];
  const title = 'CigL <90%> & "RigL"';
  const svg = reliabilityDiagramSvg(ece15, { title, width: 500, height: 560 });
  const names = checkWellFormedXml(svg);
  t.equal(names[0], 'svg');
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="500" height="560"/);
  t.ok(svg.includes(`>${escapeXml(title)}</text>`), 'title escaped');
  t.ok(svg.includes('CigL &lt;90%&gt; &amp; &quot;RigL&quot;'));
  t.ok(svg.includes(`ECE (15 equal-width bins) = ${ece15.ece.toFixed(4)}`), 'ECE in the title');
  const nonEmpty = ece15.table.filter((row) => row.count > 0).length;
  t.ok(nonEmpty >= 5 && nonEmpty < 15, `${nonEmpty} non-empty bins`);
  // background + (bar + gap) per bin + legend box and 2 swatches + histogram bar per bin + 2 frames
  t.equal(names.filter((n) => n === 'rect').length, 1 + 2 * nonEmpty + 3 + nonEmpty + 2);
  t.ok(svg.includes('stroke-dasharray="6 4"'), 'the diagonal is drawn dashed');
  t.equal(escapeXml(`<a href='x'>&</a>`), '&lt;a href=&apos;x&apos;&gt;&amp;&lt;/a&gt;');
});

t.test('the PNG opens as an image of the requested size and is not blank', async (t) => {
  const report = overConfidentReport();
  for (const [width, height] of [[640, 720], [500, 560], [900, 600]]) {
    const png = await reliabilityDiagramPng(report.equalWidth[1], { width, height, title: 'test split' });
    const meta = await sharp(png).metadata();
    t.equal(meta.format, 'png');
    t.same([meta.width, meta.height], [width, height], `${width}×${height}`);
    const stats = await sharp(png).stats();
    t.ok(stats.channels[0].min < 80 && stats.channels[2].max > 150, 'dark ink and blue bars present');
  }
  const defaults = await sharp(await reliabilityDiagramPng(report.equalWidth[0])).metadata();
  t.same([defaults.width, defaults.height], [640, 720], 'default size');
});

t.test('bad input is rejected clearly', async (t) => {
  const e = overConfidentReport().equalWidth[0];
  t.throws(() => reliabilityDiagramSvg(e, { width: 50 }), /width must be an integer number of pixels in \[200, 8000\], got 50/);
  t.throws(() => reliabilityDiagramSvg({ ...e, table: e.table.map((row) => ({ ...row, count: 0 })) }), /has no examples/);
});
