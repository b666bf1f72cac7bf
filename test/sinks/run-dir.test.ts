import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { resolveConfig, type ConfigOverride } from '../../src/config/config';
import { formatConfig, prepareRunDir, readSavedConfig, RunDirError } from '../../src/sinks/run-dir';

const flag = (p: string, raw: string): ConfigOverride => ({ path: p, raw, origin: `--${p}` });
const configIn = (runsDir: string, ...more: ConfigOverride[]) =>
  resolveConfig({ overrides: [flag('output.runsDir', runsDir), flag('train.epochs', '3'), ...more] });

t.test('a new run gets its own directory with the resolved config saved', async (t) => {
  const runsDir = path.join(t.testdir(), 'runs');
  const config = configIn(runsDir, flag('seed', '4'));
  const now = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));
  const run = prepareRunDir(config, { now });
  t.equal(run.name, 'cigl-cnn-d0.1-s4-20250102-030405');
  t.equal(run.dir, path.join(runsDir, run.name));
  t.equal(run.resumed, false);
  t.equal(fs.readFileSync(run.paths.config, 'utf8'), formatConfig(config));
  t.same(readSavedConfig(run.dir), JSON.parse(JSON.stringify(config)));
  t.ok(fs.statSync(run.paths.checkpoints).isDirectory());
  t.ok(fs.statSync(run.paths.model).isDirectory());
  t.equal(path.dirname(run.paths.sparseModel), run.paths.model);
  t.same(
    [run.paths.metricsStream, run.paths.metricsFile, run.paths.maskStatsStream, run.paths.reliability, run.paths.summary].map((p) => path.basename(p)),
    ['metrics.arrows', 'metrics.arrow', 'mask-stats.arrows', 'reliability.arrow', 'summary.json'],
  );
  const second = prepareRunDir(config, { now });
  t.equal(second.name, `${run.name}-2`, 'a generated name never reuses a directory');
});

t.test('an existing run directory is never overwritten', async (t) => {
  const runsDir = path.join(t.testdir(), 'runs');
  const config = configIn(runsDir, flag('output.runName', 'exp1'));
  const run = prepareRunDir(config);
  fs.writeFileSync(run.paths.metricsStream, 'earlier results');
  const savedConfig = fs.readFileSync(run.paths.config, 'utf8');
  t.throws(() => prepareRunDir(config), /run directory .*exp1 already exists; pass --resume/);
  t.throws(() => prepareRunDir(configIn(runsDir, flag('output.runName', 'exp1'), flag('seed', '9'))), RunDirError);
  t.equal(fs.readFileSync(run.paths.metricsStream, 'utf8'), 'earlier results', 'earlier results untouched');
  t.equal(fs.readFileSync(run.paths.config, 'utf8'), savedConfig, 'saved config untouched');
});

t.test('resume reopens a run only with the same configuration', async (t) => {
  const runsDir = path.join(t.testdir(), 'runs');
  const config = configIn(runsDir, flag('output.runName', 'exp'));
  prepareRunDir(config);
  const again = prepareRunDir(config, { resume: true });
  t.equal(again.resumed, true);
  t.equal(again.dir, path.join(runsDir, 'exp'));

  const changed = configIn(runsDir, flag('output.runName', 'exp'), flag('sparse.density', '0.05'), flag('seed', '3'));
  const err = t.throws(() => prepareRunDir(changed, { resume: true })) as Error;
  t.match(err.message, /cannot resume .*exp: the configuration differs/);
  t.match(err.message, /seed: 0 \(saved\) vs 3 \(now\)/);
  t.match(err.message, /sparse\.density: 0\.1 \(saved\) vs 0\.05 \(now\)/);

  t.throws(() => prepareRunDir(configIn(runsDir, flag('output.runName', 'nope')), { resume: true }), /cannot resume: run directory .*nope does not exist/);
  t.throws(() => prepareRunDir(configIn(runsDir), { resume: true }), /--resume needs the name of the run/);
  fs.mkdirSync(path.join(runsDir, 'stray'));
  t.throws(() => prepareRunDir(configIn(runsDir, flag('output.runName', 'stray')), { resume: true }), /stray is not a cigl run directory: cannot read .*config\.json/);
});

t.test('an unusable output directory fails before anything is created', async (t) => {
  const root = t.testdir({ 'a-file': 'not a directory' });
  t.throws(() => prepareRunDir(configIn(path.join(root, 'a-file', 'runs'))), /cannot create output directory .*a-file\/runs: a path component is a file, not a directory \(ENOTDIR\)/);
  // In a folder of its own under the system's temporary directory, which every user can traverse
  // (the checkout, where t.testdir lives, may not be).
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-locked-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  fs.chmodSync(base, 0o755);
  const locked = path.join(base, 'locked');
  fs.mkdirSync(locked, 0o555);
  if (process.getuid?.() === 0) {
    // Root ignores permission bits: the child drops to "nobody" after loading its modules; no test
    // runner hooks (NODE_OPTIONS) go with it.
    const script = path.join(__dirname, 'children', 'prepare-run-dir.js');
    const out = execFileSync(process.execPath, [script, locked], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    t.match(out, /output directory .*locked is not writable: permission denied \(EACCES\)/);
  } else {
    t.throws(() => prepareRunDir(configIn(locked)), /output directory .*locked is not writable: permission denied \(EACCES\)/);
  }
  t.same(fs.readdirSync(locked), [], 'nothing was created');
});
