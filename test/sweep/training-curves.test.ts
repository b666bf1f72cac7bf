import sharp from 'sharp';
import t from 'tap';
import type { EpochRow } from '../../src/sweep/epochs';
import { trainingCurvesPng, trainingCurvesSvg } from '../../src/sweep/training-curves';
import { checkWellFormedXml } from '../calibrate/well-formed-xml';

const rows: EpochRow[] = Array.from({ length: 12 }, (_, i) => {
  const e = i + 1;
  return {
    epoch: e,
    lr: 0.05,
    trainLoss: 2 / e,
    trainAccuracy: Math.min(0.999, 0.4 + 0.06 * e),
    valLoss: 0.9 + 0.01 * (e - 5) ** 2,
    valAccuracy: 0.7,
    valEce15: 0.02 + 0.003 * e,
    testLoss: 0.92 + 0.01 * (e - 5) ** 2,
    testAccuracy: 0.69,
    testEce15: 0.021 + 0.003 * e,
  };
});

t.test('three panels (accuracy, NLL, ECE) with a line per split, and a legend', async (t) => {
  const svg = trainingCurvesSvg(rows, { title: 'Pilot <dense>' });
  const names = checkWellFormedXml(svg);
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="1320" height="460"/);
  // Accuracy: train, val, test; NLL: train, val, test; ECE: val, test (no training ECE is logged).
  t.equal(names.filter((n) => n === 'polyline').length, 8);
  for (const title of ['Accuracy', 'NLL (cross-entropy)', 'ECE (15 bins)']) t.ok(svg.includes(`font-weight="bold">${title}</text>`), `panel ${title}`);
  for (const entry of ['training (running, per epoch)', 'validation', 'test']) t.ok(svg.includes(`>${entry}</text>`), `legend ${entry}`);
  t.ok(svg.includes('>Pilot &lt;dense&gt;</text>'), 'the title, escaped');
  t.equal(svg.split('>Epoch</text>').length - 1, 3, 'an epoch axis per panel');
  // The test NLL line falls to epoch 5 and rises after it (SVG y grows downward).
  const red = [...svg.matchAll(/<polyline points="([^"]+)"[^>]*stroke="#d1495b"/g)].map((m) => m[1].split(' ').map((p) => p.split(',').map(Number)));
  const nll = red[1];
  t.equal(nll.length, 12);
  t.ok(nll[4][1] > nll[0][1] && nll[4][1] > nll[11][1], 'test NLL lowest (largest y) at epoch 5');

  const onlyTrain = trainingCurvesSvg(rows.map((r) => ({ epoch: r.epoch, trainLoss: r.trainLoss, trainAccuracy: r.trainAccuracy })));
  t.equal(checkWellFormedXml(onlyTrain).filter((n) => n === 'polyline').length, 2, 'without validation and test curves: the training lines only');
  t.notOk(onlyTrain.includes('>test</text>'), 'and no legend entry for the missing splits');
  t.throws(() => trainingCurvesSvg([]), /the per-epoch table is empty/);
  t.throws(() => trainingCurvesSvg(rows, { height: 10 }), /height must be an integer number of pixels in \[300, 8000\], got 10/);
});

t.test('the PNG has the requested size and is not blank', async (t) => {
  const png = await trainingCurvesPng(rows, { width: 900, height: 400 });
  const meta = await sharp(png).metadata();
  t.same([meta.format, meta.width, meta.height], ['png', 900, 400]);
  const stats = await sharp(png).stats();
  t.ok(stats.channels[0].min < 80 && stats.channels[0].max > 150, 'dark ink and coloured lines present');
});
