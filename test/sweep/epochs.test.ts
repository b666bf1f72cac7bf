import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { EPOCHS_FILE, epochsFromMetricLog, readEpochTable, readRunEpochs, writeEpochTable } from '../../src/sweep/epochs';
import { writeFakeMetricLog, type FakeEpoch } from './fake-sweep';

const epochs: FakeEpoch[] = [
  { lr: 0.1, trainLoss: 2.1, trainAccuracy: 0.3, validationLoss: 1.9, validationAccuracy: 0.35, validationEce: 0.05, testLoss: 1.95, testAccuracy: 0.34, testEce: 0.06 },
  { lr: 0.05, trainLoss: 1.2, trainAccuracy: 0.6, validationLoss: 1.3, validationAccuracy: 0.55, validationEce: 0.03, testLoss: 1.35, testAccuracy: 0.54, testEce: 0.035 },
  { lr: 0.01, trainLoss: 0.4, trainAccuracy: 0.9 },
];

t.test('the per-epoch table of a metric log: one row per epoch, the last step\'s lr, no final-evaluation rows', async (t) => {
  const dir = t.testdir();
  writeFakeMetricLog(dir, 'run', epochs);
  const table = epochsFromMetricLog(path.join(dir, 'metrics.arrow'));
  t.equal(table.format, 1);
  t.equal(table.source, 'metrics.arrow');
  t.same(table.epochs, [
    { epoch: 1, lr: 0.1, trainLoss: 2.1, trainAccuracy: 0.3, valLoss: 1.9, valAccuracy: 0.35, valEce15: 0.05, testLoss: 1.95, testAccuracy: 0.34, testEce15: 0.06 },
    { epoch: 2, lr: 0.05, trainLoss: 1.2, trainAccuracy: 0.6, valLoss: 1.3, valAccuracy: 0.55, valEce15: 0.03, testLoss: 1.35, testAccuracy: 0.54, testEce15: 0.035 },
    { epoch: 3, lr: 0.01, trainLoss: 0.4, trainAccuracy: 0.9 },
  ]);
  t.notOk(table.epochs.some((r) => Object.values(r).includes(0.456) || Object.values(r).includes(9.87)), 'the final evaluation (epoch = epochs, final.* metrics) is not an epoch');

  // readRunEpochs: the metric log when there is no epochs.json, then the epochs.json written from it.
  t.same(readRunEpochs(dir), table);
  writeEpochTable(path.join(dir, EPOCHS_FILE), { ...table, epochs: table.epochs.slice(0, 1) });
  t.same(readRunEpochs(dir)?.epochs.length, 1, 'epochs.json is preferred to the metric log');
  t.equal(readRunEpochs(path.join(dir, 'nothing')), undefined, 'no curves: undefined');
});

t.test('a bad per-epoch table or metric log is an error naming the file and the field', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, EPOCHS_FILE);
  const write = (value: unknown) => fs.writeFileSync(file, JSON.stringify(value));
  write({ format: 2, epochs: [] });
  t.throws(() => readEpochTable(file), new RegExp(`${file}: not a per-epoch table \\(format 2, epochs object\\)`));
  write({ format: 1, epochs: [{ epoch: 0 }] });
  t.throws(() => readEpochTable(file), /epochs\[0\]\.epoch must be an integer ≥ 1, got 0/);
  write({ format: 1, epochs: [{ epoch: 1, testLoss: 'high' }] });
  t.throws(() => readEpochTable(file), /epochs\[0\]\.testLoss must be a finite number, got "high"/);
  write({ format: 1, epochs: [{ epoch: 2 }, { epoch: 2 }] });
  t.throws(() => readEpochTable(file), /epochs\[1\]\.epoch 2 does not follow 2/);
  fs.writeFileSync(file, '{');
  t.throws(() => readEpochTable(file), /cannot read the per-epoch table .*epochs\.json/);
  fs.writeFileSync(path.join(dir, 'metrics.arrow'), 'not arrow');
  t.throws(() => epochsFromMetricLog(path.join(dir, 'metrics.arrow')), /cannot read the metric log .*metrics\.arrow/);
});
