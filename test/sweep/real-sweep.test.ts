import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { buildCommands, runCommandLine } from '../../src/cli/main';
import { defaultWiring, type CliWiring } from '../../src/cli/wiring';
import { readSweepArtefacts } from '../../src/sweep/artefacts';
import { reproductionReport } from '../../src/sweep/report';
import { runSweep, trainRunOne } from '../../src/sweep/run-sweep';
import { captureIo } from '../helpers/cli-io';
import { tinyRunWorkspace } from '../helpers/tiny-run';

// The sweep wired to the real training job, as the lead wires `cigl sweep`, on a tiny data set.
const wiring: CliWiring = { ...defaultWiring, sweep: (job) => runSweep(job, trainRunOne(defaultWiring.train)) };

t.test('cigl sweep trains dense, RigL and CigL with the real job, and the report reads their outputs', async (t) => {
  const ws = tinyRunWorkspace({ train: 80, test: 40, config: { train: { epochs: 2, backend: 'cpu', checkpointEveryEpochs: 1, checkpointEveryMinutes: 0 }, average: { startEpoch: 1 } } });
  t.teardown(ws.cleanup);
  const io = captureIo(ws.dir);
  const argv = ['sweep', '--config', ws.config, '--methods', 'dense,rigl,cigl', '--densities', '0.2', '--seeds', '0', '--output.runName', 'tiny'];
  const code = await runCommandLine(argv, buildCommands(wiring), io);
  if (code !== 0) t.comment(io.stderr.text);
  t.equal(code, 0, 'the sweep exits 0');
  const dir = path.join(ws.runsDir, 'tiny');
  const sweep = readSweepArtefacts(dir);
  t.equal(sweep.record.status, 'completed');
  t.same(sweep.summaries.map((s) => [s.runName, s.method, s.targetDensity, s.split]), [
    ['dense-d1-s0', 'dense', 1, 'test'],
    ['rigl-d0.2-s0', 'rigl', 0.2, 'test'],
    ['cigl-d0.2-s0', 'cigl', 0.2, 'test'],
  ]);
  for (const f of ['comparison.md', 'comparison.arrow', 'runs.arrow', 'ece-vs-sparsity.png']) t.ok(fs.existsSync(path.join(dir, f)), f);
  const md = reproductionReport({ main: sweep }, { outDir: ws.dir });
  if (process.env.CIGL_KEEP_REPORT) fs.writeFileSync(process.env.CIGL_KEEP_REPORT, md);
  t.match(md, /Claim \(1\), RigL's ECE is above the dense model's \(ECE with 15 bins\): \*\*(holds|does not hold)\*\*/);
  t.match(md, /Claim \(2\), .*: \*\*(holds|does not hold)\*\*/);
  t.ok(md.includes('<img src="runs/tiny/cigl-d0.2-s0/reliability.png"'), 'the real run\'s reliability diagram is linked');
  t.match(md, /\| cigl +\| +80% \| +1 \| +\d+\.\d\d \|/, 'with the last epoch\'s training accuracy from the real metric log');
  const curve = sweep.epochs.get('cigl-d0.2-s0')?.epochs ?? [];
  t.same(curve.map((r) => r.epoch), [1, 2], 'one row per epoch of the real log');
  t.ok(curve.every((r) => r.trainAccuracy !== undefined && r.valLoss !== undefined && r.lr !== undefined && r.testLoss === undefined), 'training, validation and lr values; no test curve without train.testEveryEpoch');

  // Invoked again, the sweep trains nothing and reports the same runs.
  const again = captureIo(ws.dir);
  t.equal(await runCommandLine(argv, buildCommands(wiring), again), 0, 'the second invocation exits 0');
  t.equal((again.stderr.text.match(/finished earlier, summary reused/g) ?? []).length, 3);
});
