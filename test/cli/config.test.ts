import * as path from 'node:path';
import t from 'tap';
import {
  canonicalJson,
  ConfigError,
  configDiff,
  configHash,
  describeConfigFields,
  resolveConfig,
  type ConfigOverride,
} from '../../src/config/config';
import { fixturesDir } from '../../src/util/paths';

const flag = (p: string, raw: string): ConfigOverride => ({ path: p, raw, origin: `--${p}` });

t.test('defaults are complete, derived where documented, paths absolute', async (t) => {
  const cwd = t.testdir();
  const c = resolveConfig({ cwd });
  t.equal(c.seed, 0);
  t.match(c.sparse, { method: 'cigl', density: 0.1, distribution: 'erk', updateInterval: 100, dropFraction: 0.3, endFraction: 0.75, randomMaskRate: 0.01 });
  t.match(c.optimiser, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4, warmupEpochs: 1, schedule: 'cosine', gamma: 0.1 });
  t.same(c.optimiser.milestones, [5, 7], 'half and three quarters of 10 epochs (for schedule: step)');
  t.match(resolveConfig({ cwd, overrides: [flag('model.name', 'mlp')] }).optimiser, { lr: 0.02, weightDecay: 1e-4 }, 'mlp: its measured lr and decay');
  t.equal(resolveConfig({ cwd, overrides: [flag('train.epochs', '5')] }).optimiser.warmupEpochs, 0.5, 'a short run warms up over a tenth of it');
  t.equal(resolveConfig({ cwd, overrides: [flag('model.name', 'resnet20'), flag('optimiser.lr', '0.05')] }).optimiser.lr, 0.05, 'an explicit lr wins');
  t.same(c.calibrate, { bins: [15, 10], temperatureScaling: true, split: 'test' });
  t.match(c.average, { enabled: true, startEpoch: 8, startFraction: 0.8 });
  t.equal(c.data.path, path.join(fixturesDir, 'cifar10-subset'));
  t.equal(c.output.runsDir, path.join(cwd, 'runs'));
  t.notOk('runName' in c.output);
  t.notOk('trainImages' in c.data, 'optional fields are absent unless given');
  const named = resolveConfig({ overrides: [flag('output.runName', 'x'), flag('data.trainImages', '10')] }) as unknown as Record<string, unknown>;
  const fieldPaths = Object.entries(named).flatMap(([k, v]) => (typeof v === 'object' ? Object.keys(v as object).map((f) => `${k}.${f}`) : [k]));
  t.same(describeConfigFields().map((f) => f.path).sort(), fieldPaths.sort(), 'one help line per resolved field');
});

t.test('YAML file plus flag overrides; file paths resolve against the file, flags against cwd', async (t) => {
  const dir = t.testdir({
    'exp.yaml': ['seed: 7', 'model:', '  name: wrn-16-4', 'data:', '  path: ../data/cifar', 'sparse:', '  method: rigl', 'train:', '  epochs: 20', ''].join('\n'),
  });
  const cwd = path.join(dir, 'work');
  const c = resolveConfig({
    file: path.join(dir, 'exp.yaml'),
    cwd,
    overrides: [flag('train.epochs', '4'), flag('calibrate.bins', '20,5'), flag('output.runsDir', 'out'), { path: 'data.augment', raw: 'false', origin: '--set data.augment=false' }],
  });
  t.equal(c.seed, 7);
  t.equal(c.train.epochs, 4, 'the flag wins over the file');
  t.equal(c.optimiser.weightDecay, 5e-4, 'wrn default weight decay');
  t.same(c.optimiser.milestones, [2, 3], 'derived from the overridden epochs');
  t.equal(c.average.enabled, false, 'no averaging by default for rigl');
  t.equal(c.average.startEpoch, 3);
  t.same(c.calibrate.bins, [20, 5]);
  t.equal(c.data.augment, false);
  t.equal(c.data.path, path.resolve(dir, '../data/cifar'));
  t.equal(c.output.runsDir, path.join(cwd, 'out'));
  t.equal(resolveConfig({ overrides: [flag('sparse.method', 'dense'), flag('sparse.density', '0.2')] }).sparse.density, 1, 'dense is density 1');
});

t.test('bad values are rejected with the field path, the value and its origin', async (t) => {
  const bad = (overrides: ConfigOverride[], pattern: RegExp, name: string) => t.throws(() => resolveConfig({ overrides }), pattern, name);
  bad([flag('sparse.density', '1.5')], /sparse\.density must be a number in \(0, 1\], got 1\.5 \(from --sparse\.density\)/, 'density > 1');
  bad([flag('sparse.density', '0')], /sparse\.density must be a number in \(0, 1\], got 0/, 'density 0');
  bad([flag('sparse.method', 'rigll')], /sparse\.method must be one of dense, static, set, rigl, cigl; got "rigll" \(did you mean rigl\?\)/, 'unknown method');
  bad([flag('train.epochs', '2.5')], /train\.epochs must be an integer >= 1, got 2\.5/, 'fractional epochs');
  bad([flag('data.batchSize', 'many')], /data\.batchSize must be an integer >= 1, got "many"/, 'non-numeric');
  bad([flag('calibrate.bins', '15,1')], /calibrate\.bins\[1\] must be an integer >= 2, got 1/, 'list element');
  bad([flag('optimiser.lr', '-0.1')], /optimiser\.lr must be a number in \(0, ∞\)/, 'negative lr');
  bad([flag('train.epoch', '3')], /train\.epoch unknown field \(did you mean train\.epochs\?\)/, 'unknown field');
  bad([flag('output.runName', '../escape')], /output\.runName must be letters, digits/, 'path in a run name');
  bad([flag('model.firstLayerDense', 'yes please')], /model\.firstLayerDense must be true or false, got "yes please"/, 'boolean');
  bad([flag('optimiser.milestones', '5,3')], /optimiser\.milestones must be strictly increasing, got \[5,3\]/, 'milestone order');
  bad([flag('train.epochs', '4'), flag('average.startEpoch', '4')], /average\.startEpoch must be below train\.epochs \(4\), got 4 \(from --average\.startEpoch\)/, 'averaging after the end');

  const dir = t.testdir({
    'bad.yaml': 'sparse:\n  density: "0.1"\n  distrbution: erk\ndata: 3\n',
    'broken.json': '{"seed": 1,, }',
  });
  const err = t.throws(() => resolveConfig({ file: path.join(dir, 'bad.yaml') })) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.equal(err.issues.length, 3, 'every problem is reported at once');
  t.match(err.message, /sparse\.density must be a number in \(0, 1\], got "0\.1" \(from config file .*bad\.yaml\)/);
  t.match(err.message, /sparse\.distrbution unknown field \(did you mean sparse\.distribution\?\)/);
  t.match(err.message, /data must be a mapping of fields, got 3/);
  t.throws(() => resolveConfig({ file: path.join(dir, 'broken.json') }), /config file .*broken\.json is not valid YAML\/JSON/);
  t.throws(() => resolveConfig({ file: path.join(dir, 'missing.yaml') }), /cannot read config file .*missing\.yaml \(ENOENT\)/);
});

t.test('keys named like Object.prototype members are unknown fields, in a file and on the command line', async (t) => {
  const dir = t.testdir({
    'proto.yaml': 'toString: {}\ndata:\n  constructor: 1\nsparse:\n  hasOwnProperty: 2\n',
    'proto.json': '{"__proto__": {"toString": 1}, "model": {"__proto__": {"name": "mlp"}}}',
  });
  const yaml = t.throws(() => resolveConfig({ file: path.join(dir, 'proto.yaml') })) as ConfigError;
  t.same(yaml.issues.map((i) => [i.path, i.message]), [['toString', 'unknown field'], ['data.constructor', 'unknown field'], ['sparse.hasOwnProperty', 'unknown field']]);
  const json = t.throws(() => resolveConfig({ file: path.join(dir, 'proto.json') })) as ConfigError;
  t.same(json.issues.map((i) => i.path), ['__proto__', 'model.__proto__']);
  for (const field of ['toString', 'constructor', '__proto__', 'data.constructor', 'sparse.valueOf']) {
    t.throws(() => resolveConfig({ overrides: [flag(field, '1')] }), new RegExp(`${field.replace('.', '\\.')} unknown field`), `--${field}`);
  }
});

t.test('the hash is canonical: same config, same hash; any computing field changes it; output does not', async (t) => {
  const dir = t.testdir({
    'a.yaml': 'train:\n  epochs: 3\nseed: 1\n',
    'b.json': '{"seed": 1, "train": {"epochs": 3}}',
  });
  const a = resolveConfig({ file: path.join(dir, 'a.yaml') });
  const b = resolveConfig({ file: path.join(dir, 'b.json') });
  t.equal(configHash(a), configHash(b));
  t.match(configHash(a), /^[0-9a-f]{64}$/);
  const otherOutput = resolveConfig({ file: path.join(dir, 'a.yaml'), overrides: [flag('output.runName', 'x'), flag('output.runsDir', '/tmp/elsewhere')] });
  t.equal(configHash(otherOutput), configHash(a), 'output is not hashed');
  const otherSeed = resolveConfig({ file: path.join(dir, 'a.yaml'), overrides: [flag('seed', '2')] });
  t.not(configHash(otherSeed), configHash(a));
  t.same(configDiff(a, otherSeed), [{ path: 'seed', before: 1, after: 2 }]);
  t.equal(canonicalJson({ b: [1, { d: 2, c: undefined, a: 'x' }], a: true }), '{"a":true,"b":[1,{"a":"x","d":2}]}');
  // A saved resolved config resolves to itself.
  const again = resolveConfig({ base: JSON.parse(JSON.stringify(a)), baseOrigin: 'saved' });
  t.equal(configHash(again), configHash(a));
});
