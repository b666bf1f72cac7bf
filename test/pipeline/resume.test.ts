import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { spawnNode } from '../helpers/child-process';
import { ciglBin, latestCheckpointStep, tinyRunWorkspace, waitFor } from '../helpers/tiny-run';

// A run killed with kill -9 (twice, at different points) and resumed must end bit-identical to an
// uninterrupted run of the same config and seed.
t.test('kill -9 and --resume give the same final model as an uninterrupted run', async (t) => {
  const ws = tinyRunWorkspace();
  t.teardown(ws.cleanup);
  const train = (name: string, resume = false) =>
    spawnNode(ciglBin, ['train', '--config', ws.config, '--output.runName', name, ...(resume ? ['--resume'] : [])]);

  const straight = await train('straight').exited;
  t.equal(straight.code, 0, `uninterrupted run succeeds\n${straight.stderr}`);

  const killedDir = path.join(ws.runsDir, 'killed');
  for (const atStep of [3, 9]) {
    const child = train('killed', atStep !== 3);
    await waitFor(() => latestCheckpointStep(killedDir) >= atStep, `a checkpoint at step ≥ ${atStep}`);
    child.process.kill('SIGKILL');
    const killed = await child.exited;
    t.equal(killed.signal, 'SIGKILL', `killed after step ${latestCheckpointStep(killedDir)}`);
    t.notOk(fs.existsSync(path.join(killedDir, 'summary.json')), 'the killed run had not finished');
  }
  const resumed = await train('killed', true).exited;
  t.equal(resumed.code, 0, `resumed run finishes\n${resumed.stderr}`);
  t.match(resumed.stderr, /resumed from .*step-/);

  for (const file of ['model/weights.bin', 'model/weights.cigl-sparse']) {
    const a = fs.readFileSync(path.join(ws.runsDir, 'straight', file));
    const b = fs.readFileSync(path.join(killedDir, file));
    t.ok(a.equals(b), `${file} is bit-identical (${a.length} bytes)`);
  }
  const summary = (name: string) => JSON.parse(fs.readFileSync(path.join(ws.runsDir, name, 'summary.json'), 'utf8'));
  t.same(summary('killed').results, summary('straight').results, 'same metrics');
  t.equal(summary('killed').steps, summary('straight').steps);
});

t.test('a graceful stop (SIGINT) checkpoints and exits; --resume finishes the run', async (t) => {
  const ws = tinyRunWorkspace();
  t.teardown(ws.cleanup);
  const runDir = path.join(ws.runsDir, 'stopped');
  const child = spawnNode(ciglBin, ['train', '--config', ws.config, '--output.runName', 'stopped']);
  await waitFor(() => latestCheckpointStep(runDir) >= 2, 'a first checkpoint');
  child.process.kill('SIGINT');
  const stopped = await child.exited;
  t.equal(stopped.code, 130, `a graceful stop by Ctrl-C exits 130\n${stopped.stderr}`);
  t.notOk(fs.existsSync(path.join(runDir, 'summary.json')));
  const stepAtStop = latestCheckpointStep(runDir);
  t.ok(stepAtStop >= 2 && stepAtStop < 20, `checkpoint at the stop (step ${stepAtStop})`);
  const resumed = await spawnNode(ciglBin, ['train', '--config', ws.config, '--output.runName', 'stopped', '--resume']).exited;
  t.equal(resumed.code, 0, resumed.stderr);
  t.ok(fs.existsSync(path.join(runDir, 'summary.json')), 'the resumed run wrote its summary');
});

// The BatchNorm recompute runs after the last checkpoint; a run killed there resumes from that checkpoint
// and, the pass being deterministic by seed, ends with the same bits.
t.test('kill -9 during the BatchNorm recompute and --resume give the same final model', async (t) => {
  const ws = tinyRunWorkspace({
    train: 1500,
    config: {
      model: { name: 'cnn' },
      train: { epochs: 2, backend: 'auto', checkpointEverySteps: 0, checkpointEveryMinutes: 0, checkpointEveryEpochs: 1 },
      average: { startEpoch: 1, snapshotsPerEpoch: 4 },
    },
  });
  t.teardown(ws.cleanup);
  const train = (name: string, resume = false) =>
    spawnNode(ciglBin, ['train', '--config', ws.config, '--output.runName', name, ...(resume ? ['--resume'] : [])]);
  const straight = await train('straight').exited;
  t.equal(straight.code, 0, `uninterrupted run succeeds\n${straight.stderr}`);
  t.equal(straight.stderr.match(/recomputing BatchNorm statistics/g)?.length, 2, 'two models recomputed: live (diagnostic) and averaged');

  const killedDir = path.join(ws.runsDir, 'killed');
  const child = train('killed');
  await child.waitForLine((line) => line.includes('recomputing BatchNorm statistics'), 'stderr');
  child.process.kill('SIGKILL');
  const killed = await child.exited;
  t.equal(killed.signal, 'SIGKILL');
  t.notOk(fs.existsSync(path.join(killedDir, 'summary.json')), 'killed before the run finished');
  t.comment(`killed after ${killed.stderr.match(/recomputing BatchNorm statistics/g)?.length} recompute start(s)`);

  const resumed = await train('killed', true).exited;
  t.equal(resumed.code, 0, `resumed run finishes\n${resumed.stderr}`);
  t.match(resumed.stderr, /resumed from .*step-/);
  for (const file of ['model/weights.bin', 'model/weights.cigl-sparse']) {
    const a = fs.readFileSync(path.join(ws.runsDir, 'straight', file));
    const b = fs.readFileSync(path.join(killedDir, file));
    t.ok(a.equals(b), `${file} is bit-identical (${a.length} bytes)`);
  }
  const summary = (name: string) => JSON.parse(fs.readFileSync(path.join(ws.runsDir, name, 'summary.json'), 'utf8'));
  t.same(summary('killed').results, summary('straight').results, 'same metrics');
  t.same(summary('straight').results.map((r: { stage: string }) => r.stage), ['live', 'live, recomputed BN', 'after averaging', 'after temperature scaling']);
});
