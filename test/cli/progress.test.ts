import t from 'tap';
import { from, lastValueFrom, toArray } from 'rxjs';
import { formatDuration, imageProgress, reportProgress } from '../../src/report/progress';
import { captureOutput } from '../helpers/cli-io';
import { syntheticEvents } from '../sinks/children/synthetic-events';

t.test('without a terminal: plain lines every n steps, at epoch ends and mask updates', async (t) => {
  const out = captureOutput(false);
  let clock = 0;
  const events = syntheticEvents(0, 20);
  const passed = await lastValueFrom(from(events).pipe(reportProgress(out, { totalSteps: 20, epochs: 2, logEverySteps: 10, now: () => (clock += 100) }), toArray()));
  t.same(passed, events, 'events pass through');
  const lines = out.text.trimEnd().split('\n');
  t.same(lines, [
    'step 1/20  epoch 1/2  loss 1.0000  acc 0.0%  lr 0.100  0 img/s',
    'mask update  step 0  pruned 1  grown 1  drop fraction 0.300',
    'epoch 1/2 done  train loss 0.1000 acc 50.0%  val loss 0.2000 acc 40.0% ECE15 0.0500',
    // 11 step events since the first, 100 ms apart (mask/epoch events do not tick the clock): ETA 9 more.
    'step 11/20  epoch 2/2  loss 0.0909  acc 10.0%  lr 0.100  20 img/s  ETA 1s',
    'epoch 2/2 done  train loss 0.0500 acc 50.0%  val loss 0.1000 acc 40.0% ECE15 0.0500',
  ]);
  t.notMatch(out.text, /\r|\x1b/, 'no terminal control characters in logs');
});

t.test('on a terminal: one bar redrawn in place, throttled, epoch lines above it', async (t) => {
  const out = captureOutput(true, 120);
  let clock = 0;
  await lastValueFrom(from(syntheticEvents(0, 10)).pipe(reportProgress(out, { totalSteps: 10, epochs: 1, redrawMs: 250, now: () => (clock += 100) })));
  const redraws = out.text.split('\r').filter((s) => s.startsWith('['));
  // Clock 100, 200, ...: draws at 100, 400, 700, 1000 (the last step always draws).
  t.equal(redraws.length, 4);
  t.match(redraws[0], /^\[#{3}\.{27}\]  10\.0%  step 1\/10  epoch 1\/1/);
  t.match(redraws[3], /^\[#{30}\] 100\.0%  step 10\/10/);
  t.ok(redraws.every((r) => r.replace(/\x1b\[K[\s\S]*$/, '').length <= 119), 'fits the terminal width');
  t.match(out.text, /\repoch 1\/1 done  train loss 0\.1000.*\x1b\[K\n$/, 'the epoch line replaces the bar and ends the output');
  t.notMatch(out.text, /mask update/, 'mask updates are not printed over the bar');
});

t.test('durations', async (t) => {
  t.equal(formatDuration(59_400), '59s');
  t.equal(formatDuration(61_000), '1m01s');
  t.equal(formatDuration(3 * 3600_000 + 5 * 60_000), '3h05m');
});

t.test('image progress: quiet for short passes, log lines or one redrawn line, then a final count', async (t) => {
  let clock = 0;
  const quick = captureOutput(false);
  const q = imageProgress(quick, 100, 'cigl eval', { now: () => (clock += 10) });
  for (let n = 25; n <= 100; n += 25) q.done(n);
  q.finish();
  t.equal(quick.text, '', 'a pass shorter than a second prints nothing');

  clock = 0;
  const log = captureOutput(false);
  const l = imageProgress(log, 1000, 'cigl eval', { now: () => (clock += 1000), logEveryMs: 2000 });
  for (let n = 250; n <= 1000; n += 250) l.done(n);
  l.finish();
  // Clock: start 1000; done at 2000 (250), 3000 (500), 4000 (750), 5000 (1000).
  t.same(log.text.trimEnd().split('\n'), [
    'cigl eval: 500/1000 images (50%)  250 img/s  ETA 2s',
    'cigl eval: 1000/1000 images (100%)  250 img/s',
  ]);

  clock = 0;
  const tty = captureOutput(true);
  const b = imageProgress(tty, 1000, 'cigl predict', { now: () => (clock += 1000) });
  for (let n = 250; n <= 1000; n += 250) b.done(n);
  b.finish();
  t.equal(tty.text.split('\r').filter(Boolean).length, 4, 'one redraw per batch on a terminal');
  t.match(tty.text, /\rcigl predict: 1000\/1000 images \(100%\)  250 img\/s\x1b\[K\n$/, 'the line is ended at the finish');
});
