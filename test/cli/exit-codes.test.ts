import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { listCheckpoints } from '../../src/sinks/checkpoint';
import { spawnNode } from '../helpers/child-process';
import { ciglBin, latestCheckpointStep, tinyRunWorkspace, waitFor } from '../helpers/tiny-run';

/**
 * `cigl train` as users run it (a child process): how runs end, in exit statuses and messages.
 * 0 finished, 1 failed or diverged, 2 usage or config error, 130 after Ctrl-C, 143 after SIGTERM (both
 * with a checkpoint); a run that fails before training leaves nothing behind.
 */
const cigl = (args: readonly string[]) => spawnNode(ciglBin, args);

t.test('cigl train --model.name mlp --train.epochs 5 --optimiser.lr 1e6: diverges within the first epoch, exit 1, the last good checkpoint kept', async (t) => {
  const runsDir = t.testdir();
  const r = await cigl(['train', '--model.name', 'mlp', '--train.epochs', '5', '--optimiser.lr', '1e6', '--output.runsDir', runsDir, '--output.runName', 'wild', '--train.checkpointEverySteps', '1']).exited;
  t.equal(r.code, 1, r.stderr);
  const m = /cigl train: diverged: training diverged at step (\d+): the loss is not finite \(loss NaN, learning rate ([\d.e+]+)\); lower optimiser\.lr \(e\.g\. ([\d.e+]+)\) or warm it up \(optimiser\.warmupEpochs\)\n/.exec(r.stderr);
  t.ok(m, `the message names the step, the loss and the learning rate, and what to change:\n${r.stderr}`);
  const step = Number(m?.[1]);
  // The default one-epoch warm-up ramps the rate linearly: at step s it is 1e6 · (s + 1) / stepsPerEpoch.
  const lr = Number(m?.[2]);
  t.ok(lr > 0 && lr <= 1e6, `the learning rate in force (${lr}) is the warmed-up part of 1e6`);
  t.ok(Math.abs(Number(m?.[3]) - lr / 10) <= 1e-9 * lr, 'the suggestion is a tenth of it');
  const stepsPerEpoch = Number(/step \d+\/(\d+)/.exec(r.stdout)?.[1]) / 5;
  t.ok(step < stepsPerEpoch, `within the first epoch (step ${step} of ${stepsPerEpoch} per epoch)`);
  const runDir = path.join(runsDir, 'wild');
  t.match(r.stderr, new RegExp(`the run directory ${runDir} is kept \\(newest checkpoint: step ${step}\\); start a new run with a changed config under another output\\.runName`));
  const newest = listCheckpoints(path.join(runDir, 'checkpoints'))[0];
  t.equal(newest?.step, step, 'the newest checkpoint is the one before the step that diverged');
  const saved = JSON.parse(fs.readFileSync(path.join(newest!.dir, 'state.json'), 'utf8'));
  t.equal(saved.step, step);
  t.ok(Number.isFinite(saved.state.trainer.epochLossSum), `from before the divergence: its loss sum ${saved.state.trainer.epochLossSum} is finite`);
});

t.test('exit statuses: 143 after SIGTERM (with a checkpoint), 2 for usage and config errors (nothing created)', async (t) => {
  const ws = tinyRunWorkspace();
  t.teardown(ws.cleanup);
  const runDir = path.join(ws.runsDir, 'terminated');
  const child = cigl(['train', '--config', ws.config, '--output.runName', 'terminated']);
  await waitFor(() => latestCheckpointStep(runDir) >= 2, 'a first checkpoint');
  child.process.kill('SIGTERM');
  const terminated = await child.exited;
  t.equal(terminated.code, 143, terminated.stderr);
  t.match(terminated.stderr, /stopped after step (\d+); checkpoint saved\. Continue with:\n  cigl train --resume/);
  t.equal(latestCheckpointStep(runDir), Number(/stopped after step (\d+)/.exec(terminated.stderr)?.[1]), 'checkpointed where it stopped');

  const usage = await cigl(['train', '--bogus']).exited;
  t.equal(usage.code, 2, 'an unknown flag');
  const config = await cigl(['train', '--config', ws.config, '--train.epochs', 'many']).exited;
  t.equal(config.code, 2, 'an invalid config value');
  const missing = path.join(ws.dir, 'no-such-data');
  const noData = await cigl(['train', '--config', ws.config, '--data.path', missing, '--output.runName', 'nodata']).exited;
  t.equal(noData.code, 2, noData.stderr);
  t.match(noData.stderr, new RegExp(`cigl train: invalid config: data\\.path "${missing}" does not exist`));
  t.notOk(fs.existsSync(path.join(ws.runsDir, 'nodata')), 'nothing was created');

  const resumeMissing = await cigl(['train', '--config', ws.config, '--resume', '--output.runName', 'never']).exited;
  t.equal(resumeMissing.code, 2, 'resuming a run that does not exist');
});

t.test('a run that fails before training anything exits 1 and leaves nothing behind: the corrected command runs under the same name', async (t) => {
  const ws = tinyRunWorkspace();
  t.teardown(ws.cleanup);
  const notData = path.join(ws.dir, 'not-a-data-set');
  fs.mkdirSync(notData);
  const name = ['--output.runName', 'second-try', '--train.epochs', '3', '--average.startEpoch', '1', '--train.checkpointEverySteps', '0', '--train.checkpointEveryEpochs', '1'];
  const failed = await cigl(['train', '--config', ws.config, '--data.path', notData, ...name]).exited;
  t.equal(failed.code, 1, failed.stderr);
  t.match(failed.stderr, /cigl train: error: .*not-a-data-set/, 'the error names the data path');
  t.match(failed.stderr, /nothing was trained, and the run directory .*second-try was removed: run the same command again once the cause is fixed/);
  t.notOk(fs.existsSync(path.join(ws.runsDir, 'second-try')), 'no run directory is left');
  const fixed = await cigl(['train', '--config', ws.config, ...name]).exited;
  t.equal(fixed.code, 0, fixed.stderr);
  t.ok(fs.existsSync(path.join(ws.runsDir, 'second-try', 'summary.json')), 'the corrected run finished under the same name');
});
