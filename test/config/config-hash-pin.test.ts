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
    'dense-d1-s0': '549e06c0a88cfad76a73f74769d2e1ac7b85703e7dcbe455c06cc5aee96d39e3',
    'dense-d1-s1': 'c5a49dd4bd8644f9ce28b43829237405c9aeaaf7e4882bf3c12564dbe6c9aa6a',
    'dense-d1-s2': 'bb85ee7beac1c78c0a2df256123620cae274d353bc2bd6b38b8c994fb765b149',
    'rigl-d0.1-s0': 'b95b6969f2c9095aef1119818d9d7002f83051ea5f894113cd28ba733c3281b1',
    'rigl-d0.1-s1': '506f01a18a125318ef48dd79674f19480483acfab5a9bc2c84ad989555314f70',
    'rigl-d0.1-s2': '1423362d6602884bffcb899a3ac3c70e427412a2e408dd8865c9d65fdf1bc86c',
    'rigl-d0.05-s0': '9c94742289a6957b0fec887edd902696f0d7d6b33dab35d6c844b50882a798dc',
    'rigl-d0.05-s1': 'c7b6d616375fb2ae46ca3b9b830439afa12b0d84716d840c199d1e2de4a57036',
    'rigl-d0.05-s2': '570c993892734cbee7a3cb632f302c415a974782cd172098858d7155f4852305',
    'cigl-d0.1-s0': '0418ab2fbf24bb3a5f0aec5884e4f63c35dbaa11ef9855b8ee830e8b6dfe7081',
    'cigl-d0.1-s1': 'fc509f6c3757cdefecfe7552e21f6e646d57a2cd50e8bb69e68defa1928583a6',
    'cigl-d0.1-s2': '66321c41d6ba94ae177601989c7c3b72b1f7723241df846123837743502bf0a0',
    'cigl-d0.05-s0': '96ec0919154fe4032e10be85b0bfb1f495385f30c0736b4b5dc96572da4db692',
    'cigl-d0.05-s1': '8495265ed02cd2a21be7945c20fa236fa14a69519253545ea1605f3a4e9598ca',
    'cigl-d0.05-s2': 'e414a4bedb9a06c25ca26a0875c3980edb280dbfc7467bd05d5c8bf086635dde',
    'rigl-d0.5-s0': '7989ffc88457e7a5d032f5ebad1ad00a06bff7aa7a1349e384690b55113a701e',
    'rigl-d0.2-s0': '693fa791610c278f309d9efc208ce6946addb4f8e85927f9c4bab39062121d76',
    'rigl-d0.02-s0': '88947632728e86590d0197cec20738c5f29bf4311e202bb8e014e230b9dfd755',
    'rigl-d0.01-s0': '6213e4a9dc4612105fd400268746a9bdf875b6c41554abd9d04aefb54cddf525',
    'cigl-d0.5-s0': '0f9d03c6354ab183af973a7426cb7aae9a43746c139cbb7b1a4d4748513d6a48',
    'cigl-d0.2-s0': '65bd640480e7785876d12a6ee27d09534540712b518615badf3fb9d7ce35f8a4',
    'cigl-d0.02-s0': 'd7c58880e496564e0ad3f8fa678911f3547d9dd600e9c53f345f96138d94bbad',
    'cigl-d0.01-s0': '45035e68add74de4ed0ef29d5da33388e761329cc0f9a6e498936c6b2edf952b',
    'cigl-no-random-mask-d0.1-s0': '88ebe6d3bd3859de10d3daaf95d1ee2cdf7993d365760e102ac1412b5de99313',
    'cigl-no-random-mask-d0.1-s1': '6c85793c9a284389b225e313e5909c2d65f3891c4ee36a01364eb6e8fd6baf5d',
    'cigl-no-random-mask-d0.1-s2': 'c36a946a952f9c52c76cf004e47709f7aadf12b15fee7c3bc2a75524634a2d08',
    'cigl-no-averaging-d0.1-s0': '2c4556ad55694d15e0be3b59188fa9a5178aa9a2db6526c96fe3c8bab428725a',
    'cigl-no-averaging-d0.1-s1': 'ccd3bd95e4b09fb1a21e6009cffd44563c9771b5d831a4b54fda485ba5b8e984',
    'cigl-no-averaging-d0.1-s2': '56b7f48e49e266b3fe502292a3e29987d03f2270c222282b2b421089fda7d639'
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
