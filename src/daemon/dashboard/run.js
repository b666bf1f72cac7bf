'use strict';
// One run on its own (#<run id>): live curves from its event stream, the mask updates (density,
// pruned and grown per layer), its results table and reliability diagram, and a cancel button.

const $ = (sel) => document.querySelector(sel);
let selected = null;   // run id shown in the run panel
let source = null;     // its EventSource
let data = null;       // its rows, by series
let runState = null;   // its state, as last heard
let redrawPending = false;

function newData() {
  return { metrics: new Map(), density: new Map(), pruned: new Map(), grown: new Map() };
}

/** A metric series: step → value; a resumed run re-logs steps after its checkpoint, the latest row wins. */
function series(phase, metric) {
  const m = data.metrics.get(phase + '/' + metric);
  return m ? [...m.entries()].sort((a, b) => a[0] - b[0]) : [];
}

function addMetrics(rows) {
  for (const r of rows) {
    const key = r.phase + '/' + r.metric;
    if (!data.metrics.has(key)) data.metrics.set(key, new Map());
    data.metrics.get(key).set(r.step, r.value);
  }
  scheduleRedraw();
}

function addMaskStats(rows) {
  for (const r of rows) {
    for (const field of ['density', 'pruned', 'grown']) {
      if (!data[field].has(r.layer)) data[field].set(r.layer, new Map());
      data[field].get(r.layer).set(r.step, r[field]);
    }
  }
  scheduleRedraw();
}

function scheduleRedraw() {
  if (redrawPending) return;
  redrawPending = true;
  requestAnimationFrame(() => { redrawPending = false; redraw(); });
}

function layerSeries(field) {
  return [...data[field].entries()].map(([layer, m]) => ({ name: layer, points: [...m.entries()].sort((a, b) => a[0] - b[0]), dots: true }));
}

function redraw() {
  if (!data) return;
  lineChart($('[data-chart=loss]'), [
    { name: 'train', points: series('train', 'loss'), colour: PALETTE[0] },
    { name: 'validation', points: series('val', 'loss'), dots: true, colour: PALETTE[1] },
  ], {});
  lineChart($('[data-chart=accuracy]'), [
    { name: 'train', points: series('train', 'accuracy'), colour: PALETTE[0] },
    { name: 'validation', points: series('val', 'accuracy'), dots: true, colour: PALETTE[1] },
  ], { yMin: 0, yMax: 1 });
  const ended = runState !== null && !LIVE_STATES.has(runState);
  lineChart($('[data-chart=ece]'), [{ name: 'validation ECE', points: series('val', 'ece15'), dots: true, colour: PALETTE[1] }], { yMin: 0, empty: ended ? 'this run logged no validation ECE' : 'no validation yet' });
  // A finished run without mask updates (dense, or too short for one) made none: it is not waiting for one.
  const noMask = ended ? 'this run made no mask updates' : 'no mask updates yet';
  lineChart($('[data-chart=density]'), layerSeries('density'), { yMin: 0, empty: noMask });
  lineChart($('[data-chart=pruned]'), layerSeries('pruned'), { yMin: 0, empty: noMask });
  lineChart($('[data-chart=grown]'), layerSeries('grown'), { yMin: 0, empty: noMask });
  const legend = $('#run-legend');
  legend.replaceChildren();
  [...data.density.keys()].forEach((layer, i) => {
    const item = dashText('span', '', 'legend-item');
    const swatch = dashText('span', '', 'swatch');
    swatch.style.background = PALETTE[i % PALETTE.length];
    item.append(swatch, layer);
    legend.append(item);
  });
}

function showStatus(run) {
  runState = run.state;
  const parts = [`${run.method} · ${run.model} · density ${run.density} · seed ${run.seed} · ${run.epochs} epochs`];
  if (run.step !== undefined) parts.push(`step ${run.step}`);
  if (run.imagesPerSecond) parts.push(`${Math.round(run.imagesPerSecond)} img/s`);
  if (run.attempts > 1) parts.push(`resumed (attempt ${run.attempts})`);
  if (run.cancelRequested && run.state === 'running') parts.push('cancel requested');
  const status = $('#status');
  status.replaceChildren(dashText('b', run.state), ' · ' + parts.join(' · '));
  status.dataset.state = run.state;
  if (run.error) status.append(dashText('div', run.error, 'error'));
  $('#run-cancel').hidden = !LIVE_STATES.has(run.state) || Boolean(run.cancelRequested);
  scheduleRedraw();
}

async function showFinished(id) {
  const response = await fetch('/runs/' + encodeURIComponent(id));
  if (!response.ok || id !== selected) return;
  const run = await response.json();
  showStatus(run);
  const results = $('#results');
  results.replaceChildren();
  if (run.summary && run.summary.results) {
    // One row per model at T = 1 (the headline marked); the temperature-scaled numbers in columns of their own.
    const table = document.createElement('table');
    const all = run.summary.results;
    const models = all.filter((r) => r.temperature === undefined);
    const scaled = all.find((r) => r.temperature !== undefined);
    const headline = run.summary.headline || (models.length ? models[models.length - 1].stage : undefined);
    const scaledStage = scaled ? scaled.scaled || headline : undefined;
    const bins = Object.keys(models[0] ? models[0].ece : {}).sort((a, b) => Number(b) - Number(a)); // most bins first, as in the terminal
    const head = table.createTHead().insertRow();
    for (const h of ['model', 'accuracy', ...bins.map((b) => 'ECE' + b), 'NLL', 'Brier', ...(scaled ? ['T', 'ECE' + bins[0] + ' at T'] : [])]) head.append(dashText('th', h));
    const body = table.createTBody();
    for (const r of models) {
      const row = body.insertRow();
      const ts = scaled && r.stage === scaledStage ? scaled : undefined;
      const cells = [r.stage === headline && models.length > 1 ? r.stage + ' (headline)' : r.stage, (100 * r.accuracy).toFixed(2) + '%', ...bins.map((b) => fmt(r.ece[b])), r.nll === undefined ? '' : fmt(r.nll), r.brier === undefined ? '' : fmt(r.brier)];
      if (scaled) cells.push(ts ? ts.temperature.toFixed(3) : '', ts ? fmt(ts.ece[bins[0]]) : '');
      for (const v of cells) row.insertCell().textContent = v;
    }
    results.append(dashText('h2', 'Results (' + run.summary.split + ')'), table);
  }
  const box = $('#reliability');
  box.replaceChildren();
  if (run.state === 'completed') {
    const img = new Image();
    img.alt = 'reliability diagram';
    img.onload = () => box.prepend(dashText('h2', 'Reliability diagram'));
    img.onerror = () => box.replaceChildren(dashText('p', 'this run wrote no reliability diagram', 'empty'));
    img.src = '/runs/' + encodeURIComponent(id) + '/reliability.svg';
    box.append(img);
  }
}

function select(id) {
  if (source) source.close();
  selected = id;
  data = newData();
  runState = null;
  $('#run-title').textContent = id;
  $('#run-note').textContent = '';
  $('#status').replaceChildren();
  delete $('#status').dataset.state;
  $('#results').replaceChildren();
  $('#reliability').replaceChildren();
  $('#run-cancel').hidden = true;
  redraw();
  source = new EventSource('/runs/' + encodeURIComponent(id) + '/events');
  source.addEventListener('status', (e) => showStatus(JSON.parse(e.data)));
  source.addEventListener('metrics', (e) => addMetrics(JSON.parse(e.data)));
  source.addEventListener('mask-stats', (e) => addMaskStats(JSON.parse(e.data)));
  source.addEventListener('end', () => { source.close(); showFinished(id); });
  source.addEventListener('error', (e) => {
    if (e.data) { source.close(); $('#run-note').textContent = JSON.parse(e.data).error; return; }
    // Refused (404): a run the queue does not know, from the runs folder or a local sweep: its study curves instead.
    if (source.readyState === EventSource.CLOSED) showFromStudy(id);
  });
}

async function showFromStudy(id) {
  const response = await fetch('/study/curves?runs=' + encodeURIComponent(id), { cache: 'no-store' });
  if (!response.ok || id !== selected) { $('#run-note').textContent = 'no run ' + id; return; }
  const [curves] = (await response.json()).runs;
  const row = studyState.byId.get(id);
  if (row) showStatus({ ...row, attempts: 1 });
  for (const [key, [steps, values]] of Object.entries(curves.metrics)) data.metrics.set(key, new Map(steps.map((s, i) => [s, values[i]])));
  curves.mask.layers.forEach((layer, l) => {
    for (const field of ['density', 'pruned', 'grown']) {
      data[field].set(layer, new Map(curves.mask.steps.flatMap((s, i) => (curves.mask[field][l][i] === null ? [] : [[s, curves.mask[field][l][i]]]))));
    }
  });
  $('#run-note').textContent = 'from the runs folder (not a run of the queue): no live stream; the study polls it';
  scheduleRedraw();
}

async function refreshQueue() {
  try {
    const status = await (await fetch('/queue', { cache: 'no-store' })).json();
    const r = status.runs;
    $('#queue-name').textContent = status.queue + ' · ' + r.queued + ' waiting · ' + r.running + ' active · ' + r.completed + ' done · ' + r.failed + ' failed' + (r.diverged ? ' · ' + r.diverged + ' diverged' : '');
    $('#health').textContent = r.running + ' running · ' + r.queued + ' queued';
    const body = $('#workers tbody');
    body.replaceChildren();
    if (status.workers.length === 0) body.insertRow().append(Object.assign(dashText('td', 'no worker has claimed a run yet', 'empty'), { colSpan: 4 }));
    for (const w of status.workers) {
      const row = body.insertRow();
      const name = row.insertCell(); name.className = 'id'; name.textContent = w.worker + (w.worker === status.worker ? ' (this daemon)' : '');
      for (const state of ['running', 'completed', 'failed']) row.insertCell().textContent = w.runs[state];
    }
  } catch (err) {
    $('#queue-name').textContent = 'unreachable';
    $('#health').textContent = 'daemon unreachable';
  }
}

function initRun() {
  $('#run-cancel').addEventListener('click', async () => {
    if (selected) await control.cancelRun(selected, (m) => { $('#run-note').textContent = m; });
  });
  window.addEventListener('hashchange', () => { const id = decodeURIComponent(location.hash.slice(1)); if (id && id !== selected) select(id); });
  if (location.hash.length > 1) select(decodeURIComponent(location.hash.slice(1)));
}

/** With no run in the hash, the newest run of the study is shown in the run panel. */
function showNewestRun() {
  if (selected || location.hash.length > 1 || studyState.runs.length === 0) return;
  const queued = studyState.runs.filter((r) => r.source === 'queue');
  const newest = (queued.length ? queued : studyState.runs)[(queued.length ? queued : studyState.runs).length - 1];
  location.hash = encodeURIComponent(newest.id);
}
