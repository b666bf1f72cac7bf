import t from 'tap';
import { chromiumMissing, openBrowser, screenshot, waitUntil, watchFailures } from './browser';
import { fakeConfig, request, startTestDaemon } from './client';

/**
 * The study view in headless Chromium: a sweep of short fake runs (cigl at three densities × two seeds,
 * a dense reference, and a long rigl run to cancel) on one daemon. The compare view overlays their
 * curves, the table lists them with the settings that differ, the ECE-vs-sparsity plot has one point per
 * density, and the long run is cancelled from the page with the token entered there.
 */
const DENSITIES = [0.2, 0.1, 0.05];
const SEEDS = [0, 1];
const SWEEP = DENSITIES.flatMap((density) => SEEDS.map((seed) => ({ id: `grid.cigl-d${density}-s${seed}`, density, seed })));

t.test('the study view: compare, runs table, calibration vs sparsity, cancel', { skip: chromiumMissing }, async (t) => {
  const d = await startTestDaemon({ fake: { stepMs: 10 } });
  t.teardown(() => d.stop());
  for (const run of SWEEP) {
    const res = await d.submit(fakeConfig(run.id, 2, { sparse: { method: 'cigl', density: run.density }, seed: run.seed }));
    t.equal(res.status, 201, res.text);
  }
  t.equal((await d.submit(fakeConfig('grid.dense-d1-s0', 2, { sparse: { method: 'dense' }, seed: 0 }))).status, 201);
  t.equal((await d.submit(fakeConfig('grid.rigl-long', 500, { sparse: { method: 'rigl', density: 0.1 }, seed: 0 }))).status, 201);
  const ids = [...SWEEP.map((r) => r.id), 'grid.dense-d1-s0', 'grid.rigl-long'];

  const context = await openBrowser(t);
  const page = await context.newPage();
  const failures = watchFailures(page, d.url);
  page.on('dialog', (dialog) => void dialog.accept());
  const home = await page.goto(d.url + '/');
  t.equal(home!.headers()['content-security-policy'], "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", "today's CSP");

  // The sweep fills in live: wait until the short runs have finished and the long one trains.
  await waitUntil(page, `(() => {
    const rows = [...document.querySelectorAll('#study-table tbody tr[data-id]')];
    const state = (id) => rows.find((r) => r.dataset.id === id)?.querySelector('.state')?.textContent;
    return ${JSON.stringify(SWEEP.map((r) => r.id).concat('grid.dense-d1-s0'))}.every((id) => state(id) === 'completed') && state('grid.rigl-long') === 'running';
  })()`, 120_000);
  t.pass('the table shows the sweep finished and the long run running');

  await t.test('the runs table: one row per run, the settings that differ, results per model stage', async (t) => {
    const rowIds = await page.locator('#study-table tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { id: string } }).dataset.id));
    t.same([...rowIds].sort(), [...ids].sort(), 'every run once');
    const headers = await page.locator('#study-table thead tr:nth-child(2) th').allTextContents();
    const labels = headers.map((h) => h.replace(/ [▲▼]$/, ''));
    for (const h of ['run', 'state', 'step', 'method', 'density', 'seed', 'epochs']) t.ok(labels.includes(h), `a ${h} column`);
    t.notOk(labels.includes('model'), 'no model column: every run has the same model');
    const groups = await page.locator('#study-table thead th.group').allTextContents();
    t.same(groups, ['live model', 'after averaging', 'temperature-scaled'], 'live, averaged and temperature-scaled results in column groups of their own');
    t.same(labels.filter((h) => ['ECE15', 'ECE10', 'NLL', 'Brier'].includes(h)).length, 12, 'ECE15, ECE10, NLL and Brier for each of the three');
    // The row's cells against the study API (which reads summary.json).
    const study = (await request(d.url, '/study')).json();
    const run = study.runs.find((r: { id: string }) => r.id === 'grid.cigl-d0.1-s1');
    const cells = await page.locator('#study-table tbody tr[data-id="grid.cigl-d0.1-s1"] td').allTextContents();
    const cell = (label: string, nth = 0) => cells[headers.map((h, i) => [h.replace(/ [▲▼]$/, ''), i] as const).filter(([h]) => h === label)[nth][1]];
    t.equal(cell('method'), 'cigl');
    t.equal(cell('density'), '0.1');
    t.equal(cell('seed'), '1');
    t.equal(cell('acc', 0), `${(100 * run.live.accuracy).toFixed(2)}%`, 'live accuracy');
    t.equal(Number(cell('ECE15', 1)), Number(run.averaged.ece15.toPrecision(3)), 'ECE15 after averaging');
    t.equal(Number(cell('T')), Number(run.scaled.temperature.toFixed(3)), 'the temperature');

    // Filter and sort.
    await page.fill('#run-filter', 'd0.05');
    t.same(await page.locator('#study-table tbody tr[data-id]').count(), 2, 'the filter "d0.05" leaves the two seeds of density 0.05');
    await page.fill('#run-filter', '');
    await page.click('#study-table th[data-key="averaged.ece15"]');
    await page.click('#study-table th[data-key="averaged.ece15"]');
    const sorted = await page.locator('#study-table tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { id: string } }).dataset.id));
    const expected = [...study.runs]
      .filter((r: { averaged?: unknown }) => r.averaged)
      .sort((a: { averaged: { ece15: number } }, b: { averaged: { ece15: number } }) => b.averaged.ece15 - a.averaged.ece15)
      .map((r: { id: string }) => r.id);
    t.same(sorted.slice(0, expected.length), expected, 'sorted by ECE15 after averaging, descending (runs without it last)');
  });

  await t.test('the compare view overlays the selected runs, grouped over seeds with a band', async (t) => {
    await page.check('#select-all');
    await waitUntil(page, `document.querySelectorAll('[data-compare="train/loss"] path[data-series]:not(.raw):not(.band)').length === ${ids.length}`);
    const names = await page.locator('[data-compare="train/loss"] path[data-series]:not(.raw):not(.band)').evaluateAll((paths) => paths.map((p) => p.getAttribute('data-series')));
    t.same([...names].sort(), [...ids].sort(), 'one training-loss curve per selected run');
    const points = await page.locator('[data-compare="train/loss"] path[data-series="grid.cigl-d0.2-s0"]').getAttribute('data-points');
    t.equal(Number(points), 20, 'all 20 steps of a 2-epoch run');
    for (const chart of ['val/loss', 'train/accuracy', 'val/accuracy', 'val/ece15']) {
      t.ok((await page.locator(`[data-compare="${chart}"] path[data-series]`).count()) >= SWEEP.length, `${chart}: curves overlaid`);
    }
    t.ok((await page.locator('#compare-legend .legend-item').count()) >= 3, 'a legend by method');

    await page.check('#group-seeds');
    await waitUntil(page, `document.querySelectorAll('[data-compare="train/loss"] path.band').length === ${DENSITIES.length}`);
    const grouped = await page.locator('[data-compare="train/loss"] path[data-series]:not(.band)').evaluateAll((paths) => paths.map((p) => p.getAttribute('data-series')));
    t.equal(grouped.length, DENSITIES.length + 2, 'one mean curve per density, plus the dense and the long run');
    t.equal(grouped.filter((n) => /\(2 seeds\)$/.test(n ?? '')).length, DENSITIES.length, 'each cigl density averaged over its 2 seeds');

    // Hover shows values; a drag zooms; log scale relabels the axis.
    const box = (await page.locator('[data-compare="train/loss"]').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    await page.locator('#compare .chart .tip:not([hidden])').first().waitFor();
    t.match(await page.locator('#compare .chart .tip:not([hidden])').first().textContent(), /step \d+.*\(2 seeds\): \d/, 'hover values per curve');
    const ticksBefore = await page.locator('[data-compare="train/loss"] text.xtick').allTextContents();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.45, box.y + box.height * 0.5, { steps: 4 });
    await page.mouse.up();
    const ticksAfter = await page.locator('[data-compare="train/loss"] text.xtick').allTextContents();
    t.notSame(ticksAfter, ticksBefore, `zoomed: x ticks ${ticksBefore.join(',')} → ${ticksAfter.join(',')}`);
    t.ok(await page.locator('#reset-zoom').isEnabled(), 'reset zoom enabled');
    await page.click('#reset-zoom');
    t.same(await page.locator('[data-compare="train/loss"] text.xtick').allTextContents(), ticksBefore, 'reset');
    await page.check('#log-y');
    t.match(await page.locator('[data-compare="train/loss"]').textContent(), /log y/, 'log scale');
    await page.uncheck('#log-y');
    await page.uncheck('#group-seeds');
  });

  await t.test('ECE and accuracy vs sparsity: one point per density, mean over seeds, dense as reference', async (t) => {
    for (const metric of ['ece15', 'accuracy']) {
      const points = await page.locator(`[data-sparsity="${metric}"] circle.point`).evaluateAll((cs) => cs.map((c) => [c.getAttribute('data-group'), Number(c.getAttribute('data-density')), Number(c.getAttribute('data-n'))]));
      t.same(points.sort((a, b) => Number(b[1]) - Number(a[1])), DENSITIES.map((density) => ['cigl', density, 2]), `${metric}: one cigl point per density, each over 2 seeds`);
      t.equal(await page.locator(`[data-sparsity="${metric}"] .dense-ref`).count(), 1, `${metric}: the dense run as the reference line`);
    }
    t.equal(await page.locator('#reliability-grid figure').count(), ids.length - 1, 'a reliability diagram per selected finished run, side by side');
  });

  await t.test('the run panel: a finished run without mask updates says so; one-point ticks are whole steps', async (t) => {
    await page.goto(d.url + '/#grid.dense-d1-s0');
    await page.locator('#status[data-state=completed]').waitFor();
    await waitUntil(page, `document.querySelector('[data-chart=pruned]').textContent.includes('this run made no mask updates')`);
    t.pass('no "no mask updates yet" for a finished dense run');
    const ticks = await page.evaluate<string[]>(`(() => {
      const box = document.createElement('div');
      box.className = 'chart';
      const svg = document.createElementNS(SVG_NS, 'svg');
      box.append(svg);
      document.body.append(box);
      lineChart(svg, [{ name: 'one', points: [[35, 0.2]], dots: true }], {});
      const ticks = [...svg.querySelectorAll('text.xtick')].map((t) => t.textContent);
      box.remove();
      return ticks;
    })()`);
    t.same(ticks, ['35'], 'a one-point chart has the one tick 35 (not 35.2, 35.4, ...)');
    await page.goto(d.url + '/#grid.cigl-d0.1-s0');
    await page.locator('#status[data-state=completed]').waitFor();
    await waitUntil(page, `document.querySelectorAll('[data-chart=pruned] path[data-series]').length === 2`);
    t.same(await page.locator('[data-chart=grown] path[data-series]').evaluateAll((ps) => ps.map((p) => p.getAttribute('data-series'))), ['conv1', 'fc1'], 'grown counts per layer over time');
  });

  await t.test('cancel from the page: the token entered once, held in memory only', async (t) => {
    await page.goto(d.url + '/#grid.rigl-long');
    await page.locator('#study-table button[data-cancel="grid.rigl-long"]').waitFor();
    await page.click('#study-table button[data-cancel="grid.rigl-long"]');
    t.match(await page.locator('#study-note').textContent(), /enter the daemon token/, 'without the token the page asks for it');
    await page.fill('#token-input', 'not-the-token');
    await page.press('#token-input', 'Enter');
    await page.click('#study-table button[data-cancel="grid.rigl-long"]');
    await waitUntil(page, `document.querySelector('#study-note').textContent.includes('refused the token')`);
    t.equal((await request(d.url, '/runs/grid.rigl-long')).json().state, 'running', 'a wrong token cancels nothing');
    await page.fill('#token-input', d.token);
    await page.press('#token-input', 'Enter');
    t.equal(await page.inputValue('#token-input'), '', 'the input is cleared once the token is taken');
    await page.click('#study-table button[data-cancel="grid.rigl-long"]');
    await page.locator('#study-table tbody tr[data-id="grid.rigl-long"] .state.cancelled').waitFor({ timeout: 30_000 });
    t.pass('the run shows cancelled');
    t.equal((await request(d.url, '/runs/grid.rigl-long')).json().state, 'cancelled');
    await page.locator('#status[data-state=cancelled]').waitFor();
    const stored = await page.evaluate<{ local: number; session: number; cookie: string; url: string }>(`({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie, url: location.href })`);
    t.same({ ...stored, url: stored.url.includes(d.token) }, { local: 0, session: 0, cookie: '', url: false }, 'the token is in no storage, cookie or URL');
    const cookies = await context.cookies();
    t.same(cookies, [], 'no cookies at all');
  });

  await page.goto(d.url + '/#grid.cigl-d0.05-s1');
  await page.check('#select-all');
  await page.locator('#reliability-grid figure').first().waitFor();
  await page.locator('#status[data-state=completed]').waitFor();
  await screenshot(t, page, 'dashboard-study.png');
  t.same(failures, [], 'no script errors or failed requests');
});
