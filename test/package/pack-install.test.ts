import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { repoRoot } from '../../src/util/paths';

/**
 * The package as a user gets it: `npm pack`, installed into a fresh project outside the checkout, then
 * the README's library example type-checked with `tsc --strict` (node16 and bundler resolution) and run,
 * `require` and `import` of the same API, and `npx cigl` finding its demo data and presets inside the
 * installed package.
 *
 * Speed: the install takes the dependencies from npm's cache where `npm ci` left them (--prefer-offline;
 * the registry otherwise), and the package's own install script copies this checkout's native addon
 * (CIGL_NATIVE_PREBUILT, see scripts/build-native.js) instead of compiling it for minutes; without a
 * built addon here it skips it (CIGL_SKIP_NATIVE) and the installed package runs on stock tfjs.
 */

const HANG = 15 * 60_000;

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The TypeScript block between the README's library-example markers. */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const m = /<!-- library-example:start -->\n```ts\n([\s\S]*?)```\n<!-- library-example:end -->/.exec(readme);
  if (!m) throw new Error('README.md has no library example between <!-- library-example:start --> and <!-- library-example:end -->');
  return m[1];
}

t.test('npm pack → install in a fresh project → the README example type-checks and runs; require, import and npx cigl work', { timeout: HANG }, async (t) => {
  const example = readmeExample();
  t.ok(example.trimEnd().split('\n').length <= 40, `the example is at most 40 lines (${example.trimEnd().split('\n').length})`);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-pack-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  t.notOk(path.relative(repoRoot, work).split(path.sep)[0] !== '..' && !path.isAbsolute(path.relative(repoRoot, work)), 'the project lies outside the checkout');

  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const packed = await run(npm, ['pack', '--json', '--pack-destination', work], repoRoot);
  t.equal(packed.code, 0, packed.stderr);
  const info = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  const files = info[0].files.map((f) => f.path);
  for (const needed of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/index.mjs', 'dist/config.schema.json', 'src/daemon/dashboard/page.html', 'presets/repro-overfit.yaml', 'bin/cigl.js', 'dist/workers/augment.js']) {
    t.ok(files.includes(needed), `the package holds ${needed}`);
  }
  t.ok(files.some((f) => f.startsWith('fixtures/cifar10-subset/test/')), 'and the demo data');
  t.notOk(files.some((f) => f.startsWith('dist/test/') || f.startsWith('test/') || f.endsWith('.map')), 'no tests or source maps');

  const project = path.join(work, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'uses-cigl', version: '1.0.0', private: true }));
  const nodeTypes = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies['@types/node'];
  const addon = path.join(repoRoot, 'native', 'build', 'Release', 'cigl_native.node');
  const nativeEnv = fs.existsSync(addon) ? { CIGL_NATIVE_PREBUILT: addon } : { CIGL_SKIP_NATIVE: '1' };
  const installed = await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(work, info[0].filename), `@types/node@${nodeTypes}`], project, nativeEnv);
  t.equal(installed.code, 0, `npm install: ${installed.stderr.slice(-2000)}`);
  const pkg = path.join(project, 'node_modules', 'cigl');

  // The README's example, type-checked the two ways a TypeScript project resolves packages, then run.
  fs.writeFileSync(path.join(project, 'example.mts'), example);
  const compilerOptions = { strict: true, target: 'ES2022', types: ['node'], skipLibCheck: true };
  // (skipLibCheck: tfjs 4.22's own declarations do not pass a strict check; the example's use of cigl's types is checked.)
  fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...compilerOptions, module: 'node16', moduleResolution: 'node16', outDir: 'out' }, files: ['example.mts'] }));
  fs.writeFileSync(path.join(project, 'tsconfig.bundler.json'), JSON.stringify({ compilerOptions: { ...compilerOptions, module: 'esnext', moduleResolution: 'bundler', noEmit: true }, files: ['example.mts'] }));
  const tsc = require.resolve('typescript/bin/tsc', { paths: [repoRoot] });
  const node16 = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], project);
  t.equal(node16.code, 0, `tsc --strict, node16 resolution: ${node16.stdout}`);
  const bundler = await run(process.execPath, [tsc, '-p', 'tsconfig.bundler.json'], project);
  t.equal(bundler.code, 0, `tsc --strict, bundler resolution: ${bundler.stdout}`);

  const ran = await run(process.execPath, [path.join('out', 'example.mjs')], project);
  t.equal(ran.code, 0, ran.stderr);
  t.match(ran.stdout, /^step \d+: regrew \d+ weights$/m, "the example's own stage saw the mask updates");
  const lines = ran.stdout.split('\n').filter((l) => /^\w+\/[\w.]+: /.test(l));
  t.same(lines.map((l) => l.split('/')[0]), ['cat', 'ship', 'frog'], 'one line per test image');
  for (const line of lines) {
    const percents = [...line.matchAll(/ (\w+) (\d+\.\d)%/g)].map((m) => Number(m[2]));
    t.equal(percents.length, 3, `three classes: ${line}`);
    t.ok(percents.every((p, i) => i === 0 || p <= percents[i - 1]) && percents.reduce((a, b) => a + b, 0) <= 100.05, `most probable first, a share of 1: ${line}`);
  }
  const runs = fs.readdirSync(path.join(project, 'runs'));
  t.equal(runs.length, 1, 'the run was written where the example said');
  const summary = JSON.parse(fs.readFileSync(path.join(project, 'runs', runs[0], 'summary.json'), 'utf8')) as { headline: string; method: string };
  t.same([summary.method, summary.headline], ['rigl', 'live']);

  // require and import give the same API objects.
  const both = await run(process.execPath, ['--input-type=module', '-e', `
    import { createRequire } from 'node:module';
    import * as esm from 'cigl';
    const cjs = createRequire(process.cwd() + '/')('cigl');
    const names = Object.keys(cjs).filter((n) => n !== '__esModule');
    const same = names.every((n) => esm[n] === cjs[n]);
    console.log(JSON.stringify({ names: names.length, same, runTraining: typeof esm.runTraining, stages: Object.keys(esm.stages).length, schema: cjs.configJsonSchema().title }));
  `], project);
  t.equal(both.code, 0, both.stderr);
  const api = JSON.parse(both.stdout) as { names: number; same: boolean; runTraining: string; stages: number; schema: string };
  t.ok(api.names > 50 && api.same, `import and require: the same ${api.names} exports`);
  t.same([api.runTraining, api.schema], ['function', 'cigl run configuration']);
  t.ok(api.stages >= 11, 'the stages');
  t.same(JSON.parse(fs.readFileSync(path.join(pkg, 'dist', 'config.schema.json'), 'utf8')).title, 'cigl run configuration', 'cigl/config.schema.json is published');

  // npx cigl: the demo data, presets and dashboard are found inside the installed package.
  const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
  const help = await run(npx, ['--no-install', 'cigl', 'train', '--help'], project);
  t.equal(help.code, 0, help.stderr);
  t.match(help.stdout, new RegExp(`data\\.path +data set location \\[path; default "${path.join(pkg, 'fixtures', 'cifar10-subset').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\]`), 'the default data is the installed demo data');
  const dry = await run(npx, ['--no-install', 'cigl', 'sweep', '--preset', 'repro-overfit', '--dry-run'], project);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /cigl-d0\.1-s0 +cigl density 0\.1 seed 0/, 'the presets ship with it');
  // The demo itself (`npx cigl train`), shortened to one epoch of the small model to keep the test quick.
  const demo = await run(npx, ['--no-install', 'cigl', 'train', '--model.name', 'mlp', '--train.epochs', '1', '--average.startEpoch', '0', '--output.runName', 'demo'], project);
  t.equal(demo.code, 0, demo.stderr.slice(-2000));
  t.match(demo.stdout, /after averaging \(headline\)/);
  t.ok(fs.existsSync(path.join(project, 'runs', 'demo', 'model', 'model.json')), 'the demo run wrote its model');
  const dashboard = await run(process.execPath, ['-e', `
    const { startDaemon, daemonPipelines } = require('cigl');
    (async () => {
      const d = await startDaemon({ home: 'daemon-home', pipelines: daemonPipelines(), log: () => {} });
      try {
        const res = await fetch(d.url + '/');
        console.log(res.status, (await res.text()).includes('<html') ? 'html' : 'other');
      } finally {
        await d.shutdown();
      }
    })();
  `], project);
  t.equal(dashboard.code, 0, dashboard.stderr);
  t.equal(dashboard.stdout.trim(), '200 html', 'an embedded daemon serves the dashboard from the installed package');
});
