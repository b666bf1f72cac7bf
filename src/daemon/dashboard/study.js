'use strict';
// The study: the runs table (GET /study), the compare view of the selected runs' curves
// (GET /study/curves), the calibration-vs-sparsity plots and the selected runs' reliability diagrams.

const studyState = {
  runs: [], settings: [], byId: new Map(), lastText: '',
  selected: new Set(), autoSelected: false,
  sort: { key: 'id', dir: 1 }, filter: '', sweep: '',
  curves: new Map(),   // id → { state, data } as last fetched
  fetching: false,
  xRange: null,
};

const STAGE_COLUMNS = [
  { stage: 'live', label: 'live model', fields: ['accuracy', 'ece15', 'ece10', 'nll', 'brier'] },
  { stage: 'averaged', label: 'after averaging', fields: ['accuracy', 'ece15', 'ece10', 'nll', 'brier'] },
  { stage: 'scaled', label: 'temperature-scaled', fields: ['temperature', 'ece15', 'ece10', 'nll', 'brier'] },
];
const FIELD_LABELS = { accuracy: 'acc', ece15: 'ECE15', ece10: 'ECE10', nll: 'NLL', brier: 'Brier', temperature: 'T' };
const COMPARE_CHARTS = [
  { key: 'train/loss', title: 'Training loss' },
  { key: 'val/loss', title: 'Validation loss', dots: true },
  { key: 'train/accuracy', title: 'Training accuracy' },
  { key: 'val/accuracy', title: 'Validation accuracy', dots: true },
  { key: 'val/ece15', title: 'Validation ECE (15 bins)', dots: true },
];
const LIVE_STATES = new Set(['running', 'queued']);

function dashText(tag, value, className) {
  const node = document.createElement(tag);
  node.textContent = value;
  if (className) node.className = className;
  return node;
}

function stateBadge(state) { return dashText('span', state, 'state ' + state); }

/** A cell value of a run for a column key (`averaged.ece15`, `settings.sparse.updateInterval`, `density`, ...). */
function cellValue(run, key) {
  if (key.startsWith('settings.')) return run.settings[key.slice(9)];
  const dot = key.indexOf('.');
  if (dot > 0) { const stage = run[key.slice(0, dot)]; return stage ? stage[key.slice(dot + 1)] : undefined; }
  return run[key];
}

function formatCell(key, v) {
  if (v === undefined || v === null) return '';
  if (key.endsWith('.accuracy')) return (100 * v).toFixed(2) + '%';
  if (typeof v === 'number' && key.includes('.')) return key.endsWith('.temperature') ? v.toFixed(3) : fmt(v);
  return String(v);
}

/** Table columns: fixed ones, settings that differ, then each result stage some run has. */
function tableColumns(rows) {
  const varies = (key) => new Set(rows.map((r) => JSON.stringify(cellValue(r, key) ?? null))).size > 1;
  const cols = [
    { key: 'id', label: 'run' },
    ...(varies('sweep') ? [{ key: 'sweep', label: 'sweep' }] : []),
    { key: 'state', label: 'state' },
    { key: 'step', label: 'step' },
    { key: 'method', label: 'method' },
    ...(varies('model') ? [{ key: 'model', label: 'model' }] : []),
    { key: 'density', label: 'density' },
    { key: 'seed', label: 'seed' },
    ...(varies('epochs') ? [{ key: 'epochs', label: 'epochs' }] : []),
    ...studyState.settings.filter((k) => varies('settings.' + k)).map((k) => ({ key: 'settings.' + k, label: k, setting: true })),
  ];
  const groups = [];
  for (const g of STAGE_COLUMNS) {
    if (!rows.some((r) => r[g.stage])) continue;
    groups.push({ label: g.label, span: g.fields.length });
    for (const f of g.fields) cols.push({ key: g.stage + '.' + f, label: FIELD_LABELS[f], title: g.label + ' ' + FIELD_LABELS[f], result: true });
  }
  return { cols, groups };
}

function searchText(run) {
  return [run.id, run.sweep, run.state, run.method, run.model, 'd' + run.density, 's' + run.seed, 'seed=' + run.seed, 'density=' + run.density, run.worker,
    ...Object.entries(run.settings).map(([k, v]) => k + '=' + v)].join(' ').toLowerCase();
}

function visibleRuns() {
  const terms = studyState.filter.toLowerCase().split(/\s+/).filter(Boolean);
  const rows = studyState.runs.filter((r) => (!studyState.sweep || r.sweep === studyState.sweep) && terms.every((t) => searchText(r).includes(t)));
  const { key, dir } = studyState.sort;
  return rows.sort((a, b) => {
    const x = cellValue(a, key), y = cellValue(b, key);
    if (x === undefined || x === null) return y === undefined || y === null ? 0 : 1;
    if (y === undefined || y === null) return -1;
    return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true })) * dir;
  });
}

function renderTable() {
  const rows = visibleRuns();
  const { cols, groups } = tableColumns(studyState.runs);
  const table = document.querySelector('#study-table');
  const head = table.tHead || table.createTHead();
  head.replaceChildren();
  const groupRow = head.insertRow();
  const fixed = cols.filter((c) => !c.result).length + 2;
  groupRow.append(Object.assign(document.createElement('th'), { colSpan: fixed }));
  for (const g of groups) groupRow.append(Object.assign(dashText('th', g.label, 'group'), { colSpan: g.span }));
  const labels = head.insertRow();
  const all = document.createElement('input');
  all.type = 'checkbox';
  all.title = 'select all shown runs';
  all.id = 'select-all';
  all.checked = rows.length > 0 && rows.every((r) => studyState.selected.has(r.id));
  all.addEventListener('change', () => { for (const r of rows) all.checked ? studyState.selected.add(r.id) : studyState.selected.delete(r.id); selectionChanged(); });
  labels.append(Object.assign(document.createElement('th'), { className: 'sel' }));
  labels.lastChild.append(all);
  for (const c of cols) {
    const th = dashText('th', c.label + (studyState.sort.key === c.key ? (studyState.sort.dir > 0 ? ' ▲' : ' ▼') : ''), 'sortable' + (c.result ? ' num' : ''));
    th.dataset.key = c.key;
    if (c.title) th.title = c.title;
    th.addEventListener('click', () => {
      studyState.sort = { key: c.key, dir: studyState.sort.key === c.key ? -studyState.sort.dir : 1 };
      renderTable();
    });
    labels.append(th);
  }
  labels.append(dashText('th', ''));
  const body = table.tBodies[0] || table.createTBody();
  body.replaceChildren();
  if (rows.length === 0) {
    const td = body.insertRow().insertCell();
    td.colSpan = cols.length + 2;
    td.className = 'empty';
    td.textContent = studyState.runs.length ? 'no run matches the filter' : 'no runs yet: POST /runs, or cigl sweep --queue';
  }
  for (const run of rows) {
    const tr = body.insertRow();
    tr.dataset.id = run.id;
    tr.classList.toggle('selected', studyState.selected.has(run.id));
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = studyState.selected.has(run.id);
    box.addEventListener('change', () => { box.checked ? studyState.selected.add(run.id) : studyState.selected.delete(run.id); selectionChanged(); });
    tr.insertCell().append(box);
    for (const c of cols) {
      const td = tr.insertCell();
      if (c.key === 'id') {
        const link = dashText('a', run.id, 'id');
        link.href = '#' + encodeURIComponent(run.id);
        link.title = 'show ' + run.id + ' alone' + (run.worker ? ' (trained by ' + run.worker + ')' : '');
        td.append(link);
      } else if (c.key === 'state') {
        td.append(stateBadge(run.state));
        if (run.error) td.title = run.error;
      } else {
        td.textContent = formatCell(c.key, cellValue(run, c.key));
        if (c.result || c.key === 'step') td.className = 'num';
      }
    }
    const action = tr.insertCell();
    if (run.source === 'queue' && LIVE_STATES.has(run.state)) {
      const button = dashText('button', 'cancel', 'cancel');
      button.dataset.cancel = run.id;
      button.addEventListener('click', async () => { await control.cancelRun(run.id, studyNote); refreshStudy(); });
      action.append(button);
    }
  }
  const sweeps = [...new Set(studyState.runs.map((r) => r.sweep).filter(Boolean))];
  const pick = document.querySelector('#sweep-filter');
  const options = ['', ...sweeps];
  if (pick.options.length !== options.length || [...pick.options].some((o, i) => o.value !== options[i])) {
    pick.replaceChildren(...options.map((s) => Object.assign(document.createElement('option'), { value: s, textContent: s || 'all sweeps' })));
    pick.value = studyState.sweep;
  }
  document.querySelector('#study-count').textContent = `${rows.length} of ${studyState.runs.length} runs shown · ${studyState.selected.size} selected`;
}

function studyNote(message) { document.querySelector('#study-note').textContent = message; }

function selectionChanged() {
  renderTable();
  fetchCurves();
  renderCompare();
  renderReliability();
}

/** Curves of selected runs not fetched yet, or live (refetched every poll: the server caches finished logs). */
async function fetchCurves() {
  if (studyState.fetching) return;
  const wanted = [...studyState.selected].filter((id) => {
    const run = studyState.byId.get(id);
    const have = studyState.curves.get(id);
    return run && (!have || have.state !== run.state || LIVE_STATES.has(run.state));
  });
  if (wanted.length === 0) return;
  studyState.fetching = true;
  try {
    for (let i = 0; i < wanted.length; i += 50) {
      const ids = wanted.slice(i, i + 50);
      const states = new Map(ids.map((id) => [id, studyState.byId.get(id).state]));
      const response = await fetch('/study/curves?runs=' + ids.map(encodeURIComponent).join(','), { cache: 'no-store' });
      if (!response.ok) { studyNote('curves: ' + ((await response.json().catch(() => ({}))).error || response.status)); continue; }
      const { runs } = await response.json();
      for (const c of runs) studyState.curves.set(c.id, { state: states.get(c.id), data: c });
      scheduleCompare();
    }
  } finally {
    studyState.fetching = false;
  }
}

let comparePending = false;
function scheduleCompare() {
  if (comparePending) return;
  comparePending = true;
  requestAnimationFrame(() => { comparePending = false; renderCompare(); renderReliability(); });
}

/** What colours a run in the compare view: the chosen setting (seeds folded when grouping over them). */
function colourKey(run, keys) {
  const by = document.querySelector('#colour-by').value;
  if (by === 'method') return run.method;
  if (by === 'density') return 'd' + run.density;
  if (by === 'seed') return 's' + run.seed;
  if (by === 'method-density') return run.method + ' d' + run.density;
  return groupSeeds() ? seedGroupKey(run, keys) : run.id;
}

/**
 * The settings (but the seed) that name groups of `runs`: those whose values differ among runs of one
 * method (a setting that follows from the method, such as averaging on for cigl, names nothing new).
 */
function varyingKeys(runs) {
  const keys = ['model', 'epochs', ...studyState.settings.map((k) => 'settings.' + k)];
  const methods = [...new Set(runs.map((r) => r.method))];
  return keys.filter((k) => k !== 'settings.seed' && methods.some((m) => new Set(runs.filter((r) => r.method === m).map((r) => JSON.stringify(cellValue(r, k) ?? null))).size > 1));
}

/** A run's method, density and varying settings but the seed: runs that differ only in their seed form one group. */
function seedGroupKey(run, keys, withDensity = true) {
  const other = keys.map((k) => k.replace(/^settings\./, '') + '=' + cellValue(run, k));
  return [run.method, ...(withDensity ? ['d' + run.density] : []), ...other].join(' ');
}

function groupSeeds() { return document.querySelector('#group-seeds').checked; }

function colourMap(keys) {
  const sorted = [...new Set(keys)].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  return new Map(sorted.map((k, i) => [k, PALETTE[i % PALETTE.length]]));
}

/** Mean ± sample sd over runs at every step some run has (after each run's own smoothing). */
function meanBand(curves) {
  const at = new Map();
  for (const points of curves) for (const [x, y] of points) {
    if (!Number.isFinite(y)) continue;
    if (!at.has(x)) at.set(x, []);
    at.get(x).push(y);
  }
  const xs = [...at.keys()].sort((a, b) => a - b);
  const mean = [], band = [];
  for (const x of xs) {
    const v = at.get(x);
    const m = v.reduce((s, y) => s + y, 0) / v.length;
    const sd = v.length > 1 ? Math.sqrt(v.reduce((s, y) => s + (y - m) * (y - m), 0) / (v.length - 1)) : 0;
    mean.push([x, m]);
    band.push([x, m - sd, m + sd]);
  }
  return { mean, band };
}

function renderCompare() {
  const runs = [...studyState.selected].map((id) => studyState.byId.get(id)).filter(Boolean);
  const weight = Number(document.querySelector('#smoothing').value);
  document.querySelector('#smoothing-value').textContent = weight.toFixed(2);
  const logY = document.querySelector('#log-y').checked;
  const grouped = groupSeeds();
  const keys = varyingKeys(runs);
  const colours = colourMap(runs.map((r) => colourKey(r, keys)));
  const onZoom = (range) => { studyState.xRange = range; renderCompare(); };
  for (const chart of COMPARE_CHARTS) {
    const svg = document.querySelector(`[data-compare="${chart.key}"]`);
    const perRun = runs.map((run) => {
      const c = studyState.curves.get(run.id);
      const m = c && c.data.metrics[chart.key];
      const raw = m ? m[0].map((x, i) => [x, m[1][i]]) : [];
      return { run, raw, points: chart.dots ? raw : smooth(raw, weight) };
    }).filter((r) => r.raw.length > 0);
    let series;
    if (grouped) {
      const groups = new Map();
      for (const r of perRun) {
        const key = seedGroupKey(r.run, keys);
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(r);
      }
      series = [...groups.entries()].map(([key, members]) => {
        const { mean, band } = meanBand(members.map((m) => m.points));
        return { name: `${key} (${members.length} seed${members.length === 1 ? '' : 's'})`, colour: colours.get(colourKey(members[0].run, keys)), points: mean, band: members.length > 1 ? band : undefined, dots: chart.dots };
      });
    } else {
      series = perRun.flatMap((r) => {
        const colour = colours.get(colourKey(r.run, keys));
        const main = { name: r.run.id, colour, points: r.points, dots: chart.dots };
        return weight > 0 && !chart.dots && perRun.length <= 4 ? [{ name: r.run.id + ' (raw)', colour, points: r.raw, faint: true }, main] : [main];
      });
    }
    lineChart(svg, series, {
      logY, xRange: studyState.xRange, onZoom,
      empty: runs.length === 0 ? 'select runs in the table' : 'no data yet',
    });
  }
  const legend = document.querySelector('#compare-legend');
  legend.replaceChildren();
  for (const [key, colour] of colours) {
    const item = dashText('span', '', 'legend-item');
    const swatch = dashText('span', '', 'swatch');
    swatch.style.background = colour;
    item.append(swatch, key);
    legend.append(item);
  }
  document.querySelector('#reset-zoom').disabled = studyState.xRange === null;
}

/** Mean and sample sd of numbers. */
function meanSd(values) {
  const m = values.reduce((s, v) => s + v, 0) / values.length;
  const sd = values.length > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - m) * (v - m), 0) / (values.length - 1)) : 0;
  return { mean: m, sd, n: values.length };
}

/** ECE and accuracy against sparsity over the shown finished runs, grouped by method. */
function renderSparsity() {
  const stage = document.querySelector('#stage-pick').value;
  const rows = visibleRuns().filter((r) => r.state === 'completed');
  for (const metric of ['ece15', 'accuracy']) {
    const svg = document.querySelector(`[data-sparsity="${metric}"]`);
    const value = (r) => {
      const numbers = stage === 'scaled' && metric === 'accuracy' ? r.final : r[stage]; // T does not change accuracy
      return numbers ? numbers[metric] : undefined;
    };
    const withValue = rows.filter((r) => Number.isFinite(value(r)));
    const isDense = (r) => r.method === 'dense' || r.density >= 1;
    const denseRuns = withValue.filter(isDense);
    const dense = denseRuns.length ? meanSd(denseRuns.map(value)) : undefined;
    const byMethod = new Map();
    const sparse = withValue.filter((r) => !isDense(r));
    const keys = varyingKeys(sparse);
    for (const r of sparse) {
      const key = seedGroupKey(r, keys, false);
      if (!byMethod.has(key)) byMethod.set(key, new Map());
      const byDensity = byMethod.get(key);
      if (!byDensity.has(r.density)) byDensity.set(r.density, []);
      byDensity.get(r.density).push(r);
    }
    const colours = colourMap([...byMethod.keys()]);
    const groups = [...byMethod.entries()].map(([name, byDensity]) => ({
      name,
      colour: colours.get(name),
      points: [...byDensity.entries()].map(([density, runs]) => ({ density, ...meanSd(runs.map(value)), runs: runs.map((r) => r.id) })),
    }));
    sparsityChart(svg, groups, dense, { yMin: metric === 'ece15' ? 0 : undefined, empty: rows.length ? 'no finished run reports it' : 'no finished runs shown yet' });
  }
}

/** Reliability diagrams of the selected finished runs, side by side (T = 1 bars, temperature-scaled dots). */
function renderReliability() {
  const grid = document.querySelector('#reliability-grid');
  grid.replaceChildren();
  const runs = [...studyState.selected].map((id) => studyState.byId.get(id)).filter(Boolean);
  const shown = runs.filter((r) => studyState.curves.get(r.id) && studyState.curves.get(r.id).data.reliability).slice(0, 24);
  if (shown.length === 0) {
    grid.append(dashText('p', runs.length ? 'no selected run has finished with a reliability table yet' : 'select finished runs to see their reliability diagrams', 'empty'));
    return;
  }
  for (const run of shown) {
    const reliability = studyState.curves.get(run.id).data.reliability;
    const figure = document.createElement('figure');
    figure.dataset.id = run.id;
    const svg = svgEl('svg', { class: 'reliability' });
    const numbers = run.final;
    reliabilityChart(svg, reliability, numbers && numbers['ece' + reliability.bins]);
    figure.append(svg, dashText('figcaption', `${run.id} · ${reliability.stage}, ${reliability.split}`));
    grid.append(figure);
  }
  if (runs.length > shown.length) grid.append(dashText('p', `${runs.length - shown.length} more selected runs without diagram or beyond 24`, 'empty'));
}

async function refreshStudy() {
  let text;
  try {
    const response = await fetch('/study', { cache: 'no-store' });
    text = await response.text();
    if (!response.ok) throw new Error(text);
  } catch (err) {
    studyNote('cannot read /study: ' + err.message);
    return;
  }
  if (text !== studyState.lastText) {
    studyState.lastText = text;
    const study = JSON.parse(text);
    studyState.runs = study.runs;
    studyState.settings = study.settings;
    studyState.byId = new Map(study.runs.map((r) => [r.id, r]));
    for (const id of [...studyState.selected]) if (!studyState.byId.has(id)) studyState.selected.delete(id);
    if (!studyState.autoSelected && study.runs.length > 0) {
      // First sight of the study: the newest sweep (or the newest runs) selected, so the charts say something.
      studyState.autoSelected = true;
      const newest = study.runs[study.runs.length - 1];
      const sweep = newest.sweep ? study.runs.filter((r) => r.sweep === newest.sweep) : [];
      for (const r of (sweep.length > 0 && sweep.length <= 24 ? sweep : study.runs.slice(-12))) studyState.selected.add(r.id);
    }
    renderTable();
    renderSparsity();
  }
  fetchCurves();
}

function initStudy() {
  const on = (sel, event, f) => document.querySelector(sel).addEventListener(event, f);
  on('#run-filter', 'input', (e) => { studyState.filter = e.target.value; renderTable(); renderSparsity(); });
  on('#sweep-filter', 'change', (e) => { studyState.sweep = e.target.value; renderTable(); renderSparsity(); });
  on('#select-none', 'click', () => { studyState.selected.clear(); selectionChanged(); });
  on('#smoothing', 'input', renderCompare);
  on('#log-y', 'change', renderCompare);
  on('#group-seeds', 'change', renderCompare);
  on('#colour-by', 'change', renderCompare);
  on('#reset-zoom', 'click', () => { studyState.xRange = null; renderCompare(); });
  on('#stage-pick', 'change', renderSparsity);
  control.onChange(() => document.querySelector('#study-table').classList.toggle('unlocked', control.unlocked()));
  renderCompare();
}
