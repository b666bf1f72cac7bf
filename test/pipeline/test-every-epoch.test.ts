import * as fs from 'node:fs';
import * as path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import t from 'tap';
import { spawnNode } from '../helpers/child-process';
import { ciglBin, tinyRunWorkspace } from '../helpers/tiny-run';

// Over-fitting studies follow the test split epoch by epoch; the rows sit beside the validation rows.
t.test('train.testEveryEpoch logs test loss, accuracy and ECE at every epoch end', async (t) => {
  const ws = tinyRunWorkspace();
  t.teardown(ws.cleanup);
  const run = await spawnNode(ciglBin, ['train', '--config', ws.config, '--output.runName', 'watched', '--train.testEveryEpoch']).exited;
  t.equal(run.code, 0, run.stderr);
  t.equal(run.stdout.match(/done .* test loss \d+\.\d+ acc \d+\.\d% ECE15 \d\.\d{4}/g)?.length, 4, 'each of the 4 epoch lines shows the test split');
  const table = tableFromIPC(fs.readFileSync(path.join(ws.runsDir, 'watched', 'metrics.arrow')));
  const rows = table.toArray().map((r) => r.toJSON() as { phase: string; metric: string; epoch: number; value: number });
  for (const metric of ['loss', 'accuracy', 'ece15']) {
    const test = rows.filter((r) => r.phase === 'test' && r.metric === metric && r.epoch < 4);
    t.same(test.map((r) => r.epoch), [0, 1, 2, 3], `test ${metric}: one row per epoch`);
    t.ok(test.every((r) => Number.isFinite(r.value) && r.value >= 0), `test ${metric} values are finite`);
  }
  const accuracy = rows.filter((r) => r.phase === 'test' && r.metric === 'accuracy' && r.epoch < 4);
  t.ok(accuracy.every((r) => r.value <= 1), 'accuracies are fractions');

  const plain = await spawnNode(ciglBin, ['train', '--config', ws.config, '--output.runName', 'plain']).exited;
  t.equal(plain.code, 0, plain.stderr);
  const plainRows = tableFromIPC(fs.readFileSync(path.join(ws.runsDir, 'plain', 'metrics.arrow'))).toArray().map((r) => r.toJSON() as { phase: string; epoch: number });
  t.equal(plainRows.filter((r) => r.phase === 'test' && r.epoch < 4).length, 0, 'off by default: no per-epoch test rows');
});
