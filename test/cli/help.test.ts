import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { buildCommands, runCommandLine } from '../../src/cli/main';
import { defaultWiring } from '../../src/cli/wiring';
import { repoRoot } from '../../src/util/paths';
import { captureIo } from '../helpers/cli-io';

const commands = buildCommands(defaultWiring);
const run = async (...argv: string[]) => {
  const io = captureIo(process.cwd());
  const code = await runCommandLine(argv, commands, io);
  return { code, out: io.stdout.text, err: io.stderr.text };
};

t.test('top-level help lists every command', async (t) => {
  for (const argv of [['--help'], ['-h'], ['help']]) {
    const { code, out } = await run(...argv);
    t.equal(code, 0, argv.join(' '));
    t.match(out, /^Usage: cigl <command> \[options\]$/m);
    for (const name of ['train', 'eval', 'predict', 'data', 'sweep']) t.match(out, new RegExp(`^  ${name} +\\S`, 'm'), `${name} listed`);
  }
  const bare = await run();
  t.equal(bare.code, 2, 'no command is a usage error');
  t.match(bare.err, /Commands:/);
  t.match((await run('--version')).out, /^\d+\.\d+\.\d+\n$/);
});

t.test('every command has --help with its usage and options', async (t) => {
  const expected: Record<string, RegExp[]> = {
    train: [/^Usage: cigl train \[--config FILE\]/m, /--resume/, /--print-config/, /^  sparse\.density +fraction of weights kept/m, /^  train\.epochs +/m],
    eval: [/^Usage: cigl eval --model DIR/m, /-m, --model DIR/, /--split SPLIT/, /--bins N,N/, /--backend NAME/],
    predict: [/^Usage: cigl predict --model DIR FILE\.\.\./m, /--data PATH/, /--top-k N/, /--abstain-below P/, /--format FORMAT/, /-o, --output FILE/, /softmax\(z \/ T\)/],
    data: [/^Usage: cigl data fetch DATASET/m, /--dest DIR/, /--url URL/, /cifar10, cifar100/],
    sweep: [/^Usage: cigl sweep/m, /--methods LIST/, /--densities LIST/, /--seeds LIST/, /--dry-run/, /^  sparse\.method +/m],
  };
  for (const [name, patterns] of Object.entries(expected)) {
    const viaFlag = await run(name, '--help');
    t.equal(viaFlag.code, 0, `${name} --help exits 0`);
    for (const p of patterns) t.match(viaFlag.out, p, `${name} --help shows ${p}`);
    t.match(viaFlag.out, /-h, --help +show this help/);
    t.equal((await run('help', name)).out, viaFlag.out, `cigl help ${name} is the same`);
    t.equal((await run(name, '--some.bad', 'x', '-h')).out, viaFlag.out, `${name}: --help wins over other arguments`);
  }
  t.notMatch((await run('eval', '--help')).out, /Config fields/, 'eval takes no config fields');
});

t.test('unknown commands get a hint', async (t) => {
  const { code, err } = await run('trian');
  t.equal(code, 2);
  t.match(err, /unknown command "trian" \(did you mean train\?\)/);
  t.match((await run('help', 'nope')).err, /unknown command "nope"/);
});

t.test('bin/cigl.js runs the built CLI', async (t) => {
  const out = execFileSync(process.execPath, [path.join(repoRoot, 'bin', 'cigl.js'), 'sweep', '--help'], { encoding: 'utf8' });
  t.match(out, /^Usage: cigl sweep/);
});
