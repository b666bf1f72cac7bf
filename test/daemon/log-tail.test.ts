import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { MessageHeader } from 'apache-arrow';
import { ArrowRunLog, metricsSpec, type MetricRow } from '../../src/sinks/arrow-log';
import { streamMessageSpans } from '../../src/sinks/arrow-table';
import { ArrowLogTail } from '../../src/daemon/log-tail';
import { SharedLogRows } from '../../src/daemon/shared-log-rows';
import { tempDir } from './client';

function step(log: ArrowRunLog, s: number): void {
  log.record({ type: 'step', step: s, epoch: 0, loss: 1 / (s + 1), accuracy: 0.5, lr: 0.1, imagesPerSecond: 100, wallTimeMs: s });
}

t.test('the tail returns each complete row once, in order, across partial writes and resumed segments', async (t) => {
  const dir = tempDir('cigl-tail-');
  const tail = new ArrowLogTail(dir, 'metrics');
  t.same(tail.readRows(metricsSpec), [], 'no log yet: nothing');

  const log = ArrowRunLog.open(dir, 'run', { flushIntervalMs: 1e6 });
  step(log, 0);
  step(log, 1);
  t.same(tail.readRows(metricsSpec), [], 'buffered rows are not on disk yet');
  log.flush();
  const first = tail.readRows<MetricRow>(metricsSpec);
  t.same(first.map((r) => [r.step, r.metric]), [0, 1].flatMap((s) => ['loss', 'accuracy', 'lr', 'images_per_second'].map((m) => [s, m])));
  t.same(tail.readRows(metricsSpec), [], 'read once');

  // A message cut short (the writer mid-write): held back until complete.
  step(log, 2);
  log.flush();
  const file = path.join(dir, 'metrics.arrows');
  const full = fs.readFileSync(file);
  const cut = full.length - 20;
  const kept = full.subarray(cut);
  fs.truncateSync(file, cut);
  t.same(tail.readRows(metricsSpec), [], 'a half-written batch is not returned');
  fs.appendFileSync(file, kept);
  t.same(tail.readRows<MetricRow>(metricsSpec).map((r) => r.step), [2, 2, 2, 2], 'and comes once it is complete');

  // Cut after a flush's dictionary messages, before its record batch: the dictionaries wait for their
  // batch (a batch read without them could not be decoded).
  const before = fs.statSync(file).size;
  step(log, 3);
  log.flush();
  const grown = fs.readFileSync(file);
  const spans = streamMessageSpans(grown.subarray(before), 'new messages').spans;
  t.same(spans.map((s) => s.headerType), [MessageHeader.DictionaryBatch, MessageHeader.DictionaryBatch, MessageHeader.DictionaryBatch, MessageHeader.RecordBatch]);
  const batchStart = before + spans[3].offset;
  fs.truncateSync(file, batchStart);
  t.same(tail.readRows(metricsSpec), [], 'dictionaries alone give no rows');
  fs.appendFileSync(file, grown.subarray(batchStart));
  t.same(tail.readRows<MetricRow>(metricsSpec).map((r) => [r.step, r.metric]), ['loss', 'accuracy', 'lr', 'images_per_second'].map((m) => [3, m]), 'and the batch decodes with them once complete');
  log.close();

  // A resumed run writes metrics-1.arrows; the tail continues into it.
  const resumed = ArrowRunLog.open(dir, 'run', { resume: true, flushIntervalMs: 1e6 });
  step(resumed, 2);
  step(resumed, 3);
  resumed.close();
  t.same(tail.readRows<MetricRow>(metricsSpec).map((r) => r.step), [2, 2, 2, 2, 3, 3, 3, 3]);
  const messages = new ArrowLogTail(dir, 'metrics').readMessages();
  t.equal(messages.length, 4 * 4, 'per flush (three, then one in the resumed segment) the dictionaries of run_id, phase and metric and one record batch; schemas left out');
});

t.test('shared rows: one decoded list per log while any stream holds it', async (t) => {
  const dir = tempDir('cigl-tail-');
  const log = ArrowRunLog.open(dir, 'run', { flushIntervalMs: 1e6 });
  step(log, 0);
  log.flush();
  const shared = new SharedLogRows();
  const a = shared.acquire(dir, 'metrics', metricsSpec);
  const b = shared.acquire(dir, 'metrics', metricsSpec);
  t.equal(shared.size, 1);
  t.equal(a.from(0).length, 4);
  step(log, 1);
  log.close();
  t.same(b.from(2).map((text) => JSON.parse(text).step), [0, 0, 1, 1, 1, 1], 'rows from any position, as JSON');
  t.equal(a.from(8).length, 0);
  a.release();
  a.release();
  t.equal(shared.size, 1, 'still held by b (a second release of a is ignored)');
  b.release();
  t.equal(shared.size, 0, 'dropped when nobody holds it');
});
