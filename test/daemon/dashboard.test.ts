import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { RecordBatchReader, Table } from 'apache-arrow';
import { daemonPipelines } from '../../src/cli/commands/daemon';
import { readArrowLog } from '../../src/sinks/arrow-log';
import { runPaths } from '../../src/sinks/run-dir';
import { chromiumMissing, openBrowser, screenshot, waitUntil, watchFailures } from './browser';
import { postJson, realJobWorkspace, request, startTestDaemon, waitForRun } from './client';

/**
 * End to end with the real training job: a tiny cigl run submitted to a daemon, watched live on the
 * dashboard in headless Chromium (skipped, with the reason, when /usr/bin/chromium is missing), then its
 * finished outputs checked through the API.
 */

t.test('a real cigl run, submitted and watched live: curves grow while it trains, then the reliability diagram', async (t) => {
  const ws = realJobWorkspace();
  t.teardown(ws.cleanup);
  const tensorsBefore = tf.memory().numTensors;
  const d = await startTestDaemon({ home: path.join(ws.dir, 'home'), pipelines: daemonPipelines(), dataRoots: [ws.dataRoot], pollMs: 100 });
  t.teardown(() => d.stop());
  t.same((await request(d.url, '/pipelines')).json().pipelines.map((p: { name: string }) => p.name), ['train', 'cigl', 'rigl', 'dense']);
  const submit = async () => {
    const res = await postJson(d.url, '/runs', { pipeline: 'cigl', config: ws.config('watched', 6) }, d.token);
    t.equal(res.status, 201, res.text);
  };

  let submitted = false;
  await t.test('the dashboard in headless Chromium', { skip: chromiumMissing }, async (t) => {
    const context = await openBrowser(t);
    const page = await context.newPage();
    const failures = watchFailures(page, d.url);

    await submit();
    submitted = true;
    await page.goto(`${d.url}/#watched`);
    // Sample what the page shows until it says the run finished.
    const samples: { points: number; state: string }[] = [];
    for (;;) {
      // (page code as strings: this project compiles without the DOM library)
      const sample = await page.evaluate<{ points: number; state: string }>(`({
        points: Number(document.querySelector('[data-chart=loss] path[data-series=train]')?.getAttribute('data-points') ?? 0),
        state: document.querySelector('#status')?.dataset.state ?? '',
      })`);
      samples.push(sample);
      if (sample.state === 'completed') break;
      if (sample.state === 'failed' || sample.state === 'cancelled') throw new Error(`the run ended ${sample.state}`);
      await page.waitForTimeout(200);
    }
    const whileRunning = [...new Set(samples.filter((s) => s.state === 'running' && s.points > 0).map((s) => s.points))];
    t.ok(whileRunning.length >= 2, `the loss curve grew while the run trained: ${whileRunning.join(' → ')} points`);
    t.same(whileRunning, [...whileRunning].sort((a, b) => a - b), 'and only grew');
    t.equal(samples[samples.length - 1].points, 30, 'all 30 steps drawn at the end');

    const image = page.locator('#reliability img');
    await image.waitFor();
    await waitUntil(page, `(() => {
      const img = document.querySelector('#reliability img');
      return img !== null && img.complete && img.naturalWidth > 0;
    })()`);
    t.ok(await page.locator('#reliability h2', { hasText: 'Reliability diagram' }).isVisible(), 'the reliability diagram is shown');
    t.ok(await page.locator('#results table').isVisible(), 'with the results table');
    const headers = await page.locator('#results th').allTextContents();
    t.same(headers.slice(-2), ['T', 'ECE15 at T'], 'temperature scaling in columns of its own');
    const rows = await page.locator('#results tbody tr').allTextContents();
    t.ok(rows.some((r) => r.startsWith('after averaging (headline)')), `the headline named: ${rows.join(' | ')}`);
    t.notOk(rows.some((r) => r.startsWith('after temperature scaling')), 'no row of its own for the scaled model');
    for (const chart of ['accuracy', 'ece', 'density']) {
      t.ok(await page.locator(`[data-chart=${chart}] path`).count() > 0, `the ${chart} chart has curves`);
    }
    await page.locator('#study-table tbody tr[data-id=watched] .state.completed').waitFor(); // the table refreshes every 2 s
    t.pass('the runs table shows the run completed');
    await screenshot(t, page, 'daemon-dashboard.png');
    t.same(failures, [], 'no script errors or failed requests');
  });

  if (!submitted) await submit();
  const done = await waitForRun(d.url, 'watched', (r) => r.state === 'completed');
  t.equal(done.step, 30, '6 epochs × 5 steps');
  t.equal(done.summary.runName, 'watched');
  t.ok(done.summary.results.length >= 2, 'results before and after averaging');
  const paths = runPaths(path.join(d.daemon.home.runsDir, 'watched'));
  for (const file of [path.join(paths.model, 'model.json'), paths.sparseModel, paths.summary, paths.metricsFile, paths.reliabilitySvg]) {
    t.ok(fs.existsSync(file), `${path.relative(paths.dir, file)} exists`);
  }
  const svg = await request(d.url, '/runs/watched/reliability.svg');
  t.equal(svg.status, 200);
  t.match(svg.text, /<svg[^>]+xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  const stream = await request(d.url, '/runs/watched/metrics');
  const reader = RecordBatchReader.from(stream.body);
  t.equal(new Table(reader.schema, [...reader]).numRows, readArrowLog(paths.dir, 'metrics').numRows, 'the Arrow stream of the finished run is its whole log');
  const tensors = Number(/^cigl_tfjs_tensors (\d+)$/m.exec((await request(d.url, '/metrics')).text)![1]);
  t.equal(tensors, 0, 'no trainer thread holds tensors after the run');
  t.equal(tf.memory().numTensors, tensorsBefore, "the run made no tensor in the daemon's own thread: it trained in its trainer thread");
});
