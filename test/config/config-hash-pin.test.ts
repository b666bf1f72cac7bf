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
 * the config moved to a zod schema (issue 18). Paths are pinned to fixed absolute values so that the hash
 * does not depend on where the checkout lies; where the default and preset paths point is checked apart.
 */
const PINNED: Record<string, string | Record<string, string>> = {
  'default': '0913a235d352a357cba054eb7cfb2b85e4388e8e6dc3a3b7149aac11f014f340',
  'demo': '490a394f897e4a889b9acca843fcfd3e93a3ba77ac1299acf6dfda6b2cb34816',
  'mlp': '2b0237b07709237a650807f01d626c16d1e262b6d49636fbb55f7c24ad3dcd73',
  'step': '7b7007c44e07a9a02760fcf4d0a8440a556fe438db78c951b9416bfb9d74aa54',
  'dense': '13748a5c165fbab598ad4aec335748f8de0e8ce6f16fd0f36ce0e7671c155744',
  'overfit-pilot': {
    'dense-d1-s0': '1110a645c172e9ae31c4c26de3db45cf288deb2f799142c066ec237ee7deb757'
  },
  'repro-overfit-p': {
    'cigl-p0.01-d0.1-s0': 'bef195fa0f56f342584f6a059dfd6f0f1231d80abe7856103679ac5d5476d035',
    'cigl-p0.05-d0.1-s0': 'bf15d59751da7b018f1aea56a3a202fff5f7b141353c04a251106f8804b2c9df',
    'cigl-p0.1-d0.1-s0': '9793856793e39a5c5ccc00565ac5a5ce1562ee44e600e8c4422592dc64a94e5c'
  },
  'repro-overfit': {
    'dense-d1-s0': '9c99cec761552d1fd2bc0f3b9b07da11a75cfd6fc5c4e8ea9b239068631b21d4',
    'dense-d1-s1': 'ecc3c0bb9ebe00a95b8aae90879dbb9e9bafdd998de8cd6b6443c02e03122624',
    'dense-d1-s2': '59f62d57e65b7a9e9be67c32078e02f6338f0c8dbe1a6ec56d8137ac5c538f5b',
    'rigl-d0.1-s0': '1489b5c5d9b68caff1070d2b3121674223cfefca23a032c98b417cc09355ba8c',
    'rigl-d0.1-s1': '60180f89a674178d965ea96bc43676f92e06703a30d25d0dbf36b522fab71d87',
    'rigl-d0.1-s2': '17642fd1f14107032bf1e6d6462c5eefb84aab4f0cd962c626ca8a11d093638c',
    'rigl-d0.05-s0': 'd4a654804dddb48910e4831482b01518c5992cdc79f432b3edc674fbfbc63dc1',
    'rigl-d0.05-s1': '34533cf708906e21294c27cbf45f1ee3b58fda70c74514b99bec08904f5c0f5c',
    'rigl-d0.05-s2': 'fe83d635e09e6bad6c4571a501660541859cb5f5dfdc7d563fda035907c23f37',
    'cigl-d0.1-s0': 'fc44359e4b494b705f767ef14e735ca3a563c81df9ef5b6ce97e88aae932d307',
    'cigl-d0.1-s1': '74cc5077fdcbe573740c6718fdaf21fbf1e179a1c464979b6f24c20b0ec6fe9c',
    'cigl-d0.1-s2': '928455d295c904aa43b1889eaba4528abb4af0ceb0e43fcd4d1e7d2c481545d5',
    'cigl-d0.05-s0': 'a817fcd3342b6b07e5a4cf17d9d191cbe8e82bd2db202d9916c6a517b1a8ec2f',
    'cigl-d0.05-s1': '62c3cbf961ceecc4628721f7ca2314ecb36ce80ac363ac92e63465e3b5b08fca',
    'cigl-d0.05-s2': '70f8dc0313b9cc9278dec0bc19d584f518390c7a31779935feb9618c14954123',
    'rigl-d0.5-s0': '0cdc87d083d1962b60e5b32d1209e45276754391e156e70e390b9f421e8002a9',
    'rigl-d0.2-s0': '028c60eb0838a24a1f315def320dc2e9586b4af9554956a036cca6617ec187f5',
    'rigl-d0.02-s0': '4093138185196eb6bd72d85fddef02ee21041a6a01243dc61700c5ae9fcf593e',
    'rigl-d0.01-s0': '19fb94ac032bd3b60f75d443bde2c96f985586d003b64207d032da1a75095e39',
    'cigl-d0.5-s0': '682a8ac63e2896e2c1d28953863ec7814bd1099ad8e8c412b11ca30e44a2aee8',
    'cigl-d0.2-s0': 'efd6bb97e8838b49ad2e6f83b989f4424be76fec76844a861fd5d4641802fc0b',
    'cigl-d0.02-s0': 'c66ecca4b7e318d726f412eccb94c1ffbfc179b6fd19d54aabc2613731a478ea',
    'cigl-d0.01-s0': '470c517d328e449348db759ea56981d2fc04fe95de9cacd516821c9b19883eba',
    'cigl-no-random-mask-d0.1-s0': '4e74cae0a4c1e717f9509c5d0694ea4ddd19c8c5119ed238bab72e7dc0274a06',
    'cigl-no-random-mask-d0.1-s1': '05ca039e8a5da837661f025bceb53475e8fa223513e94f5a35914363c1f84f9c',
    'cigl-no-random-mask-d0.1-s2': 'a035726462e65ba9b9928a6035d6109eeb8b34d339948880845429a0f6c2e47d',
    'cigl-no-averaging-d0.1-s0': '15d392c3ed83251e10184744d529862b826243117b3e760b796333a33310f53f',
    'cigl-no-averaging-d0.1-s1': 'e027932d9096861e7239e66ba6e3b472774bfdbabfb4e6d52464d081d441709c',
    'cigl-no-averaging-d0.1-s2': 'b514fb476e92b741550600fa293f0c8718026f6072e4c01d6fb38464f7250807'
  },
  'repro-resnet20': {
    'dense-d1-s0': 'ffceeed60056700c3bee8b3fe7c85f641d6d94515c9870261743111c631c5121',
    'rigl-d0.1-s0': '76ce557ea81e7d9b5bf80149ec98e6ab2da251a5897105ae5cf9a394fd2f10a8',
    'cigl-d0.1-s0': 'c37ebfa68ba0d79180daead23855f7fc8a9021b2fc1669ae4f6bbb56ddfebb63'
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
