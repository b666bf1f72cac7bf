import t from 'tap';
import { configHash, resolveConfig, type ConfigOverride } from '../../src/config/config';
import { prepareRunData } from '../../src/pipeline/run-data';

const flag = (p: string, raw: string): ConfigOverride => ({ path: p, raw, origin: `--${p}` });

t.test('data.trainImages keeps that many training images (validation and test untouched); absent keeps the hash', async (t) => {
  const cwd = t.testdir();
  const all = resolveConfig({ cwd });
  const kept = resolveConfig({ cwd, overrides: [flag('data.trainImages', '900')] });
  t.equal(all.data.trainImages, undefined);
  t.not(configHash(kept), configHash(all), 'a subset is another configuration');

  const full = await prepareRunData(all);
  const subset = await prepareRunData(kept);
  t.equal(subset.train.count, 900);
  t.equal(subset.validation.count, full.validation.count, 'the validation hold-out is the same');
  t.equal(subset.test?.count, full.test?.count);
  const perClass = (labels: Int32Array) => labels.reduce((acc, l) => (acc[l]++, acc), new Array(full.classNames.length).fill(0));
  const fullShares = perClass(full.train.labels).map((n: number) => (900 * n) / full.train.count);
  perClass(subset.train.labels).forEach((n: number, c: number) => t.ok(Math.abs(n - fullShares[c]) < 1, `class ${c} keeps its share`));
  t.not(subset.stats.mean.join(), full.stats.mean.join(), 'normalisation from the kept images only');

  const tooMany = resolveConfig({ cwd, overrides: [flag('data.trainImages', String(full.train.count + 1))] });
  await t.rejects(prepareRunData(tooMany), { message: new RegExp(`data.trainImages ${full.train.count + 1} is more than the ${full.train.count} training images`) });
  t.throws(() => resolveConfig({ cwd, overrides: [flag('data.trainImages', '0')] }), /data\.trainImages/);
});
