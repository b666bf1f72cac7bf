import * as path from 'node:path';
import t from 'tap';
import { expandSweep, sweepCommand } from '../../src/cli/commands/sweep';
import { parseCommandArgs } from '../../src/cli/command';
import { configHash, resolveConfig } from '../../src/config/config';
import { defaultWiring } from '../../src/cli/wiring';
import { PRESETS_DIR } from '../../src/sweep/preset';
import { fixturesDir } from '../../src/util/paths';

/**
 * The config hashes of existing runs must not change: `--resume` and a re-run sweep compare them, and a
 * study's runs were written by an earlier build. These hashes were computed by the code of main before
 * the config moved to a zod schema (issue 18); the study presets' hashes are those of the presets as
 * committed (changing a preset is a new configuration whose runs start afresh: re-pin it deliberately,
 * never to make a code change pass). Paths are pinned to fixed absolute values so that the hash
 * does not depend on where the checkout lies; where the default and preset paths point is checked apart.
 */
const PINNED: Record<string, string | Record<string, string>> = {
  'default': '0913a235d352a357cba054eb7cfb2b85e4388e8e6dc3a3b7149aac11f014f340',
  'demo': '490a394f897e4a889b9acca843fcfd3e93a3ba77ac1299acf6dfda6b2cb34816',
  'mlp': '2b0237b07709237a650807f01d626c16d1e262b6d49636fbb55f7c24ad3dcd73',
  'step': '7b7007c44e07a9a02760fcf4d0a8440a556fe438db78c951b9416bfb9d74aa54',
  'dense': '13748a5c165fbab598ad4aec335748f8de0e8ce6f16fd0f36ce0e7671c155744',
  'overfit-pilot': {
    'dense-d1-s0': '0f66043c4516adb5bf6f9fd1f2abadddb88bc539ae7899b395753cc34eaa106d'
  },
  'repro-overfit-p': {
    'cigl-p0.01-d0.1-s0': '390f0d1b6d5719efda17543b2dfa76c135fd2f712a2bb93c5dfadabb9b690982',
    'cigl-p0.05-d0.1-s0': 'd8e2837129c824aa0fb2b1394b223ee6937669ff717ac735669c5e091f711ca5',
    'cigl-p0.1-d0.1-s0': '4237ba00cfcbc554a369d5ccc711e6a5ce28198d6e3cff9844dc58c2ab9982d2'
  },
  'repro-overfit': {
    'dense-d1-s0': '0ff54e90bc69cfdd1e19738f64b66ac1ccfdb7a8d2672cca2b06fbf581759583',
    'dense-d1-s1': 'ca5a3170b48930a9857a9fc74fe75d8298b6ff1fd389da1529feec1634786870',
    'dense-d1-s2': '6e328ec07f76a1ff906d421be657b8d41163110cb8c351eebd4c5f668656f87e',
    'rigl-d0.1-s0': '16534420d158177e61025d66d252b8a318bdbe73636cc663d73812cc96d107db',
    'rigl-d0.1-s1': '3e1f68e4ef3a054dfd2db26ba49a6a451eb14015e21f852583486cf9334ca7a8',
    'rigl-d0.1-s2': '59eefa1c1fda4cb63392f26103d156dfd6d5955308d93719bf9613e6955f6221',
    'rigl-d0.05-s0': 'bd6493fdab7ff5e4da256630e8fa03aca71f13d28b626acd5f47b973e86c949e',
    'rigl-d0.05-s1': '80ea1f1a45fe4cc7f94e4a29a4b3db2fbe8d630c0788fa4f68d391f5487349c0',
    'rigl-d0.05-s2': '011b3b0c170a2b3387f300e4bbdba335053c6212c4f30c0defdf52e1fe619f52',
    'cigl-d0.1-s0': 'efb1f61b94d141c0085e79c1f6dd164f17d0d7bb39575c9e4760ae8062776b4c',
    'cigl-d0.1-s1': '0c79fa14654e61f09e0938ecd0a7fb86f030d5cb0bec5a86dbbc562260eb5655',
    'cigl-d0.1-s2': '2f2756049608b5deb701b19245bc0cba4219f457e120455bc1515a63f8ba4f2b',
    'cigl-d0.05-s0': 'fa06794553727a12394e60a970da67528923c2620e893e602d52743efac9ac73',
    'cigl-d0.05-s1': '333c5df77bc5bed915450e6e16270b9d936c0cf322f0b7ddc599bc8a0f2c3761',
    'cigl-d0.05-s2': '7e98ea10ad8c0c2fab985790538f6147a84f0dea90cf6b29e73d8ce1515c39bd',
    'rigl-d0.5-s0': '76aaf07955440d9526113cc5afc5438fbb39a984fed34179d664c66c6de7536d',
    'rigl-d0.2-s0': 'fb3ce69c90df51e5d4845b444f5d5134d55883656750c22606fbfe93dbaab405',
    'rigl-d0.02-s0': '6d7b274a0a693431fa3482a8237c33b7da63c7e500945df23a693d12185f70f0',
    'rigl-d0.01-s0': '8d64f44e57638a2e6ef40723668f3e0e80dfcf1a8adc9aba1ec91f1d5b30079d',
    'cigl-d0.5-s0': '83cd7282b523add10fa9e520f4a858892635f54d1acde5f787ca7ce7480284cb',
    'cigl-d0.2-s0': '3080b8344e0506d7792addec68a31f8bd416582798dd07a636334cecbc08dac4',
    'cigl-d0.02-s0': '1c42b8922f110224fd9b4b2aaf2707afb78f1fbea313fb03f9fecd79b3cdf566',
    'cigl-d0.01-s0': '27f4594ddfbda7be83c19395c4f42f7780d3270a253d1b6c556180f5055b7f9e',
    'cigl-no-random-mask-d0.1-s0': '88ebe6d3bd3859de10d3daaf95d1ee2cdf7993d365760e102ac1412b5de99313',
    'cigl-no-random-mask-d0.1-s1': '6c85793c9a284389b225e313e5909c2d65f3891c4ee36a01364eb6e8fd6baf5d',
    'cigl-no-random-mask-d0.1-s2': 'c36a946a952f9c52c76cf004e47709f7aadf12b15fee7c3bc2a75524634a2d08',
    'cigl-no-averaging-d0.1-s0': '27f62cf8dc5bf3f20ac589c35f028d65ed9a04843589d5bd0962ec97beed429c',
    'cigl-no-averaging-d0.1-s1': '4faa015bd547753dd955baf5029d87a0251d2d6ca7d93cf17e771000f7936dfd',
    'cigl-no-averaging-d0.1-s2': '5e7ca21c058921e5fd42ea42e6bc95722718dbf0456ace1f321b15da770522a2'
  },
  'repro-resnet20': {
    'dense-d1-s0': '628a39a094cba7e8967e212d2641122a6044d0361b845a516423c14b79d4feac',
    'rigl-d0.1-s0': '115c680bd6d2e41a6c58c7416300aaa1eebac1fde0a3c95adfafd01ca2b839fc',
    'cigl-d0.1-s0': '4b858ff12241c69c7e95fa7a8b94ca089e1f06e07daa596bdd435bd61e7c0920'
  }
};

const fixed = ['--data.path', '/pinned/data', '--output.runsDir', '/pinned/runs'];
const io = { cwd: '/pinned/cwd', stdout: { write: () => true }, stderr: { write: () => true } };
const spec = sweepCommand(defaultWiring);

const single: Record<string, string[]> = {
  default: [],
  demo: ['--optimiser.lr', '0.05', '--average.snapshotsPerEpoch', '4'],
  mlp: ['--model.name', 'mlp', '--train.epochs', '3'],
  step: ['--optimiser.schedule', 'step', '--train.epochs', '20', '--sparse.method', 'rigl'],
  dense: ['--sparse.method', 'dense'],
};

t.test('single-run configs hash as on main', async (t) => {
  for (const [name, argv] of Object.entries(single)) {
    const args = parseCommandArgs(spec, [...argv, ...fixed]);
    t.equal(configHash(resolveConfig({ overrides: args.overrides, cwd: io.cwd })), PINNED[name], name);
  }
});

t.test("every preset run's config hashes as on main", async (t) => {
  for (const preset of ['overfit-pilot', 'repro-overfit-p', 'repro-overfit', 'repro-resnet20']) {
    const { runs } = expandSweep(parseCommandArgs(spec, ['--preset', preset, ...fixed]), io, new Date(0));
    const hashes = Object.fromEntries(runs.map((r) => [r.output.runName, configHash(r)]));
    t.same(hashes, PINNED[preset], preset);
  }
});

t.test('the paths hashed with a run: the fixture data by default, preset paths from the preset folder', async (t) => {
  t.equal(resolveConfig({}).data.path, path.join(fixturesDir, 'cifar10-subset'));
  const { runs } = expandSweep(parseCommandArgs(spec, ['--preset', 'repro-overfit']), io, new Date(0));
  t.equal(runs[0].data.path, path.resolve(PRESETS_DIR, '../../shared/datasets/cifar10'));
});
