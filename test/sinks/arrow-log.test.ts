import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { from, Subject, throwError, concat } from 'rxjs';
import { lastValueFrom, toArray } from 'rxjs';
import { tableFromIPC, type Table } from 'apache-arrow';
import pl from 'nodejs-polars';
import {
  ArrowRunLog,
  readArrowLog,
  segmentFiles,
  logTrainEvents,
  writeReliabilityTable,
  reliabilityRows,
} from '../../src/sinks/arrow-log';
import { calibrationMetrics } from '../../src/calibrate/metrics';
import { completeStreamPrefix, readStreamTolerant } from '../../src/sinks/arrow-table';
import { spawnNode } from '../helpers/child-process';
import { lossAt, syntheticEvents } from './children/synthetic-events';

const writerScript = path.join(__dirname, 'children', 'arrow-log-writer.js');

function column(table: Table, name: string): unknown[] {
  // The iterator, unlike toArray(), yields nulls; Int64 values come as bigint.
  return [...table.getChild(name)!].map((v) => (typeof v === 'bigint' ? Number(v) : v));
}

/** Checks that the train/loss rows are exactly steps 0..n-1 with the synthetic values; returns n. */
function checkLossRows(t: Test, steps: unknown[], metrics: unknown[], values: unknown[], phases: unknown[]): number {
  const lossSteps: number[] = [];
  let wrong = 0;
  for (let i = 0; i < steps.length; i++) {
    if (metrics[i] === 'loss' && phases[i] === 'train') {
      lossSteps.push(steps[i] as number);
      if (values[i] !== lossAt(steps[i] as number)) wrong++;
    }
  }
  t.equal(wrong, 0, 'every loss value is the one written for its step');
  t.same(lossSteps, lossSteps.map((_, i) => i), 'loss rows are steps 0..n-1, in order, none missing or repeated');
  return lossSteps.length;
}

t.test('metrics are readable while the writer runs and after kill -9, by apache-arrow and by polars', async (t) => {
  const dir = t.testdir();
  const child = spawnNode(writerScript, [dir]);
  const reported = (line: string) => Number(/^rows (\d+)/.exec(line)?.[1] ?? -1);

  const liveLine = await child.waitForLine((l) => reported(l) >= 200);
  const live = readArrowLog(dir, 'metrics');
  t.ok(live.numRows >= reported(liveLine), `live read sees the ${reported(liveLine)} rows reported flushed (got ${live.numRows})`);
  checkLossRows(t, column(live, 'step'), column(live, 'metric'), column(live, 'value'), column(live, 'phase'));

  const lastLine = await child.waitForLine((l) => reported(l) >= 600);
  child.process.kill('SIGKILL');
  const exit = await child.exited;
  t.equal(exit.signal, 'SIGKILL');
  t.notOk(fs.existsSync(path.join(dir, 'metrics.arrow')), 'no final IPC file after a kill');

  const table = readArrowLog(dir, 'metrics');
  t.ok(table.numRows >= reported(lastLine), `after the kill: ${table.numRows} rows, at least the ${reported(lastLine)} reported`);
  const n = checkLossRows(t, column(table, 'step'), column(table, 'metric'), column(table, 'value'), column(table, 'phase'));
  t.ok(n >= 100, `${n} steps of loss survive (600 rows are at least 129 steps)`);
  t.same(new Set(column(table, 'run_id')), new Set(['child-run']));

  // The independent reader: polars on the same file (complete messages only, as for any live file).
  const bytes = fs.readFileSync(path.join(dir, 'metrics.arrows'));
  const df = pl.readIPCStream(Buffer.from(completeStreamPrefix(bytes, 'metrics.arrows')));
  t.equal(df.height, table.numRows, 'polars reads as many rows');
  t.same(df.columns, ['run_id', 'step', 'epoch', 'time', 'phase', 'metric', 'value']);
  t.same(df.dtypes.map(String), ['DataType(Categorical)', 'DataType(Int64)', 'DataType(Int32)', 'DataType(Datetime(ms,UTC))', 'DataType(Categorical)', 'DataType(Categorical)', 'DataType(Float64)'],
    'polars sees the dictionary columns as categorical, the timestamp as UTC milliseconds, even across flushes that replace dictionaries');
  t.same(Array.from(df.getColumn('value').toArray()), column(table, 'value'), 'polars reads the same values');
  t.same(Array.from(df.getColumn('step').toArray(), Number), column(table, 'step'));
  t.same(Array.from(df.getColumn('metric').toArray()), column(table, 'metric'));
  t.same(Array.from(df.getColumn('time').toArray(), (d) => (d as unknown as Date).getTime()), column(table, 'time'), 'the same timestamps');

  const mask = readArrowLog(dir, 'mask-stats');
  t.ok(mask.numRows >= 2, 'mask statistics readable too');
  const maskDf = pl.readIPCStream(Buffer.from(completeStreamPrefix(fs.readFileSync(path.join(dir, 'mask-stats.arrows')), 'mask')));
  t.equal(maskDf.height, mask.numRows);
  t.same(Array.from(maskDf.getColumn('layer').toArray()), column(mask, 'layer'));
});

t.test('logTrainEvents passes events through; the final close writes IPC files both readers open', async (t) => {
  const dir = t.testdir();
  const events = syntheticEvents(0, 40);
  const log = ArrowRunLog.open(dir, 'run-a');
  const out = await lastValueFrom(from(events).pipe(logTrainEvents(log), toArray()));
  log.close({ final: true });
  t.same(out, events, 'events pass through unchanged');

  const file = tableFromIPC(fs.readFileSync(path.join(dir, 'metrics.arrow')));
  // 40 steps x 4 metrics + 4 epoch ends x 5 metrics + 2 mask updates x 3 metrics.
  t.equal(file.numRows, 40 * 4 + 4 * 5 + 2 * 3);
  t.same(file.schema.fields.map((f) => `${f.name}:${f.type}`), [
    'run_id:Dictionary<Int32, Utf8>',
    'step:Int64',
    'epoch:Int32',
    'time:Timestamp<MILLISECOND, UTC>',
    'phase:Dictionary<Int32, Utf8>',
    'metric:Dictionary<Int32, Utf8>',
    'value:Float64',
  ]);
  t.same(column(file, 'time'), column(file, 'step').map((s) => 10 * (s as number)), 'every row has its event\'s time (synthetic: step × 10 ms after the Unix epoch)');
  const df = pl.readIPC(fs.readFileSync(path.join(dir, 'metrics.arrow')));
  t.equal(df.height, file.numRows, 'polars opens the IPC file');
  const val = df.filter(pl.col('phase').eq(pl.lit('val')).and(pl.col('metric').eq(pl.lit('loss'))));
  t.same(Array.from(val.getColumn('step').toArray(), Number), [9, 19, 29, 39]);
  t.same(Array.from(val.getColumn('value').toArray()), [9, 19, 29, 39].map((s) => 2 * lossAt(s)));

  const mask = pl.readIPC(fs.readFileSync(path.join(dir, 'mask-stats.arrow')));
  t.same(mask.columns, ['run_id', 'step', 'epoch', 'time', 'layer', 'pruned', 'grown', 'reselected', 'density', 'drop_fraction', 'regrown_pruned']);
  t.same(mask.toRecords().map((r) => [Number(r.step), r.layer, r.pruned, r.reselected, r.regrown_pruned]), [
    [0, 'conv1', 0, 0, 0],
    [0, 'fc1', 1, 2, 1],
    [20, 'conv1', 20, 0, 0],
    [20, 'fc1', 21, 2, 1],
  ]);
});

t.test('on error or unsubscribe the streams are flushed but no final file is written', async (t) => {
  // As a run ends that fails or stops: its log is closed without the final files (runTrainJob's dispose).
  const dir = t.testdir();
  const failing = concat(from(syntheticEvents(0, 5)), throwError(() => new Error('boom')));
  const log = ArrowRunLog.open(dir, 'r');
  await t.rejects(lastValueFrom(failing.pipe(logTrainEvents(log))), /boom/);
  log.close();
  t.notOk(fs.existsSync(path.join(dir, 'metrics.arrow')));
  t.equal(readArrowLog(dir, 'metrics').numRows, 5 * 4 + 3, 'rows before the error are on disk (5 steps, 1 mask update)');

  const dir2 = t.testdir();
  const subject = new Subject<ReturnType<typeof syntheticEvents>[number]>();
  const log2 = ArrowRunLog.open(dir2, 'r', { flushIntervalMs: 60_000 });
  const sub = subject.pipe(logTrainEvents(log2)).subscribe();
  for (const e of syntheticEvents(0, 3)) subject.next(e);
  sub.unsubscribe();
  log2.close();
  t.equal(readArrowLog(dir2, 'metrics').numRows, 3 * 4 + 3, 'closing flushes buffered rows');
  t.notOk(fs.existsSync(path.join(dir2, 'metrics.arrow')));
});

t.test('resume continues in a new segment; re-produced rows replace the old ones, nothing is lost', async (t) => {
  const dir = t.testdir();
  t.throws(() => ArrowRunLog.open(dir, 'r', { logEverySteps: 0 }), /logEverySteps/);
  const first = ArrowRunLog.open(dir, 'r');
  for (const e of syntheticEvents(0, 25)) first.record(e);
  first.close(); // killed or stopped: no final file
  t.throws(() => ArrowRunLog.open(dir, 'r'), /already exists.*resume/);

  // The resumed run restarts from a checkpoint at step 20 and re-produces steps 20..24 (other wall times).
  const resumed = ArrowRunLog.open(dir, 'r', { resume: true });
  await lastValueFrom(from(syntheticEvents(20, 20, 100_000)).pipe(logTrainEvents(resumed)));
  resumed.close({ final: true });
  t.same(segmentFiles(dir, 'metrics').map((f) => path.basename(f)), ['metrics.arrows', 'metrics-1.arrows']);
  t.same(segmentFiles(dir, 'mask-stats').map((f) => path.basename(f)), ['mask-stats.arrows', 'mask-stats-1.arrows']);

  const merged = readArrowLog(dir, 'metrics');
  const n = checkLossRows(t, column(merged, 'step'), column(merged, 'metric'), column(merged, 'value'), column(merged, 'phase'));
  t.equal(n, 40, 'steps 0..39 once each');
  const wall = column(merged, 'time') as number[];
  const steps = column(merged, 'step') as number[];
  t.ok(steps.every((s, i) => (s >= 20 ? wall[i] >= 100_000 : wall[i] < 100_000)), 'rows from step 20 on come from the resumed segment');
  const epochEnds = column(merged, 'metric').filter((m) => m === 'epoch_loss').length;
  t.equal(epochEnds, 4, 'one epoch_loss row per epoch, none duplicated');

  const final = tableFromIPC(fs.readFileSync(path.join(dir, 'metrics.arrow')));
  t.equal(final.numRows, merged.numRows, 'the final file holds the merged rows');
  t.same(column(final, 'value'), column(merged, 'value'));
  const mask = tableFromIPC(fs.readFileSync(path.join(dir, 'mask-stats.arrow')));
  t.same(column(mask, 'step'), [0, 0, 20, 20], 'mask update at step 20 kept once');
});

t.test('a half-written last message is dropped, earlier batches kept', async (t) => {
  const dir = t.testdir();
  const log = ArrowRunLog.open(dir, 'r');
  for (const e of syntheticEvents(0, 10)) log.record(e);
  log.flush();
  for (const e of syntheticEvents(10, 10)) log.record(e);
  log.close();
  const file = path.join(dir, 'metrics.arrows');
  const bytes = fs.readFileSync(file);
  const whole = readStreamTolerant(bytes, file);
  t.equal(whole.truncated, false);
  const cut = readStreamTolerant(bytes.subarray(0, bytes.length - 7), file);
  t.equal(cut.truncated, true);
  t.equal(cut.table.numRows, whole.table.numRows - (10 * 4 + 5), 'only the last batch is lost');
  t.throws(() => readStreamTolerant(Buffer.from('not arrow at all'), 'x.arrows'), /x\.arrows: not an Arrow IPC stream/);
  t.throws(() => readArrowLog(t.testdir(), 'metrics'), /no metrics\.arrows log/);
});

t.test('reliability bins from the calibration stage are an IPC file both readers open; empty bins are null', async (t) => {
  const dir = t.testdir();
  // Two examples, 3 classes: confidences ~0.93 (right) and ~0.58 (wrong); 5 bins leave 3 empty.
  const logits = Float32Array.from([3, 0, 0, 1, 0.5, -1]);
  const report = calibrationMetrics(logits, Int32Array.from([0, 2]), 3, { binCounts: [5] });
  const five = report.equalWidth[0];
  const rows = reliabilityRows({ runId: 'r', split: 'test', stage: 'averaged', calibrated: false }, five);
  t.equal(rows.length, 5);
  const file = path.join(dir, 'reliability.arrow');
  writeReliabilityTable(file, rows);

  const table = tableFromIPC(fs.readFileSync(file));
  t.same(column(table, 'count'), five.table.map((b) => b.count));
  t.same(column(table, 'confidence'), five.table.map((b) => b.meanConfidence));
  const df = pl.readIPC(fs.readFileSync(file));
  t.same(df.columns, ['run_id', 'split', 'stage', 'calibrated', 'bins', 'bin', 'lower', 'upper', 'count', 'confidence', 'accuracy']);
  t.same(Array.from(df.getColumn('count').toArray()), [0, 0, 1, 0, 1]);
  t.same(Array.from(df.getColumn('accuracy').toArray()), [null, null, 0, null, 1], 'empty bins read back as null');
  t.same(Array.from(df.getColumn('upper').toArray()), five.table.map((b) => b.upper));
  t.same(Array.from(df.getColumn('calibrated').toArray()), [false, false, false, false, false]);
});
