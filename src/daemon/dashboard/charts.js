'use strict';
// SVG charts of the dashboard: line charts (bands, smoothing, hover values, drag-to-zoom, log scale),
// the sparsity plot (mean ± sd per density, dense as a reference line) and small reliability diagrams.
// Everything is drawn with DOM calls (no HTML strings), so no run name or value can inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#3b6fb6', '#e0474c', '#2a9d5b', '#d98c1f', '#7b4fb3', '#1f9bb3', '#b34f8a', '#6b7280', '#8c6d1f', '#3f8f8f', '#c2410c', '#4d7c0f'];
const W = 400, H = 220, L = 46, R = 8, T = 10, B = 30;

function svgEl(name, attrs, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return '–';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

/** Nice tick values covering [lo, hi]; `integer`: no fractional ticks (steps). */
function ticks(lo, hi, count, integer) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  if (integer) step = Math.max(1, Math.round(step));
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Ticks of a log axis over [lo, hi] (both > 0): powers of ten, with 2 and 5 between when few decades. */
function logTicks(lo, hi) {
  const out = [];
  const decades = Math.log10(hi / lo);
  const mantissas = decades < 1.2 ? [1, 2, 5] : [1];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mantissas) {
      const v = Number((m * Math.pow(10, e)).toPrecision(12));
      if (v >= lo && v <= hi) out.push(v);
    }
  }
  return out.length >= 2 ? out : [lo, hi].map((v) => Number(v.toPrecision(2)));
}

/** Exponential moving average with TensorBoard's debiasing (the first points are not pulled to 0). */
function smooth(points, weight) {
  if (!(weight > 0) || points.length < 3) return points;
  let last = 0, n = 0;
  return points.map(([x, y]) => {
    if (!Number.isFinite(y)) return [x, y];
    last = last * weight + (1 - weight) * y;
    n++;
    return [x, last / (1 - Math.pow(weight, n))];
  });
}

/** At most `max` points, evenly strided, always keeping the last. */
function thin(points, max) {
  if (points.length <= max) return points;
  const stride = points.length / max;
  const out = [];
  for (let i = 0; i < max; i++) out.push(points[Math.floor(i * stride)]);
  out.push(points[points.length - 1]);
  return out;
}

/** Index of the point whose x is nearest `x` (points sorted by x). */
function nearest(points, x) {
  let lo = 0, hi = points.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < x) lo = mid; else hi = mid;
  }
  return Math.abs(points[lo][0] - x) <= Math.abs(points[hi][0] - x) ? lo : hi;
}

function emptyChart(svg, message) {
  svg.append(svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#9ca3af', 'font-size': 12, class: 'empty-note' }, message));
}

/** The chart's tooltip box, an HTML element next to its SVG (created once). */
function tooltipOf(svg) {
  const box = svg.parentNode;
  let tip = box.querySelector(':scope > .tip');
  if (!tip) {
    tip = document.createElement('div');
    tip.className = 'tip';
    tip.hidden = true;
    box.append(tip);
  }
  return tip;
}

/** Mouse position in the SVG's own coordinates (the viewBox is scaled to fit the element). */
function svgPoint(svg, event) {
  const m = svg.getScreenCTM();
  if (!m) return { x: 0, y: 0 };
  const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(m.inverse());
  return { x: p.x, y: p.y };
}

/**
 * A line chart on shared axes.
 * series: [{ name, colour, points: [[x, y]], band: [[x, lo, hi]], dots, dash, width, faint, id }]
 * opts: { xLabel, yMin, yMax, empty, logY, xRange: [a, b] | null, onZoom(range | null), refs: [{ y, label }], integerX }
 */
function lineChart(svg, series, opts) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const tip = tooltipOf(svg);
  tip.hidden = true;
  const finite = (p) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!opts.logY || p[1] > 0);
  const all = series.flatMap((s) => s.points.filter(finite));
  if (all.length === 0) return emptyChart(svg, opts.empty || 'no data yet');
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  if (opts.xRange) [x0, x1] = opts.xRange;
  // One x value: a domain around it whose only integer tick is that value (not 35.2, 35.4, ...).
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
  const inView = (p) => p[0] >= x0 && p[0] <= x1;
  const visible = all.filter(inView);
  const bandValues = series.flatMap((s) => (s.band || []).filter((b) => b[0] >= x0 && b[0] <= x1).flatMap((b) => [b[1], b[2]])).filter((v) => Number.isFinite(v) && (!opts.logY || v > 0));
  const ys = visible.map((p) => p[1]).concat(bandValues);
  let y0 = ys.length ? Math.min(...ys) : 0, y1 = ys.length ? Math.max(...ys) : 1;
  for (const r of opts.refs || []) if (Number.isFinite(r.y)) { y0 = Math.min(y0, r.y); y1 = Math.max(y1, r.y); }
  const log = Boolean(opts.logY) && y0 > 0;
  if (!log) {
    if (opts.yMin !== undefined && !opts.xRange) y0 = Math.min(y0, opts.yMin);
    if (opts.yMax !== undefined && !opts.xRange) y1 = Math.max(y1, opts.yMax);
  }
  if (y1 === y0) { const d = Math.max(1e-3, Math.abs(y0) * 0.1); y0 -= d; y1 += d; }
  let ly0 = log ? Math.log10(y0) : y0, ly1 = log ? Math.log10(y1) : y1;
  const pad = (ly1 - ly0) * 0.05; ly0 -= pad; ly1 += pad;
  const fy = (y) => (log ? Math.log10(y) : y);
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (fy(y) - ly0) / (ly1 - ly0)) * (H - T - B);
  const yTicks = log ? logTicks(Math.pow(10, ly0), Math.pow(10, ly1)) : ticks(ly0, ly1, 4);
  for (const v of yTicks) {
    if (fy(v) < ly0 || fy(v) > ly1) continue;
    svg.append(svgEl('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v), stroke: '#eef0f3' }));
    svg.append(svgEl('text', { x: L - 4, y: sy(v) + 3, 'text-anchor': 'end', 'font-size': 10, fill: '#6b7280', class: 'ytick' }, fmt(v)));
  }
  for (const v of ticks(x0, x1, 5, opts.integerX !== false)) {
    if (v < x0 || v > x1) continue;
    svg.append(svgEl('text', { x: sx(v), y: H - B + 13, 'text-anchor': 'middle', 'font-size': 10, fill: '#6b7280', class: 'xtick' }, fmt(v)));
  }
  svg.append(svgEl('text', { x: (L + W - R) / 2, y: H - 3, 'text-anchor': 'middle', 'font-size': 10, fill: '#6b7280' }, (opts.xLabel || 'step') + (log ? ' · log y' : '')));
  const clipId = 'clip' + Math.random().toString(36).slice(2);
  const defs = svgEl('defs');
  const clip = svgEl('clipPath', { id: clipId });
  clip.append(svgEl('rect', { x: L, y: T, width: W - L - R, height: H - T - B }));
  defs.append(clip);
  svg.append(defs);
  const plot = svgEl('g', { 'clip-path': `url(#${clipId})` });
  svg.append(plot);
  for (const r of opts.refs || []) {
    if (!Number.isFinite(r.y)) continue;
    plot.append(svgEl('line', { x1: L, x2: W - R, y1: sy(r.y), y2: sy(r.y), stroke: r.colour || '#374151', 'stroke-dasharray': '5 3', class: 'ref' }));
    svg.append(svgEl('text', { x: W - R - 3, y: sy(r.y) - 3, 'text-anchor': 'end', 'font-size': 9, fill: '#374151' }, r.label));
  }
  const drawn = [];
  series.forEach((s, i) => {
    const colour = s.colour || PALETTE[i % PALETTE.length];
    if (s.band && s.band.length > 1) {
      const band = s.band.filter((b) => Number.isFinite(b[1]) && Number.isFinite(b[2]) && (!log || b[1] > 0));
      const top = band.map((b) => sx(b[0]).toFixed(1) + ' ' + sy(b[2]).toFixed(1));
      const bottom = band.slice().reverse().map((b) => sx(b[0]).toFixed(1) + ' ' + sy(b[1]).toFixed(1));
      if (band.length > 1) plot.append(svgEl('path', { d: 'M' + top.concat(bottom).join('L') + 'Z', fill: colour, 'fill-opacity': 0.15, stroke: 'none', class: 'band', 'data-series': s.name }));
    }
    const pts = thin(s.points.filter(finite), 1500);
    if (pts.length === 0) return;
    const d = pts.map((p, j) => (j ? 'L' : 'M') + sx(p[0]).toFixed(1) + ' ' + sy(p[1]).toFixed(1)).join('');
    const attrs = { d, fill: 'none', stroke: colour, 'stroke-width': s.width || 1.5, 'data-series': s.name, 'data-points': s.points.length };
    if (s.dash) attrs['stroke-dasharray'] = s.dash;
    if (s.faint) { attrs['stroke-opacity'] = 0.25; attrs.class = 'raw'; }
    plot.append(svgEl('path', attrs));
    if (s.dots || pts.length === 1) for (const p of pts) plot.append(svgEl('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: colour }));
    if (!s.faint) drawn.push({ s, colour, pts: s.points.filter(finite) });
  });
  svg.append(svgEl('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none', stroke: '#c9ced6' }));

  // Hover: a cursor line, a dot per series at the nearest step, the values in the tooltip.
  const overlay = svgEl('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: 'transparent', class: 'overlay' });
  const cursor = svgEl('g', { visibility: 'hidden', 'pointer-events': 'none' });
  const selection = svgEl('rect', { y: T, height: H - T - B, fill: '#3b6fb6', 'fill-opacity': 0.12, visibility: 'hidden', 'pointer-events': 'none' });
  svg.append(cursor, selection, overlay);
  const invert = (px) => x0 + ((px - L) / (W - L - R)) * (x1 - x0);
  let dragFrom = null;
  overlay.addEventListener('mousemove', (event) => {
    const { x: px } = svgPoint(svg, event);
    if (dragFrom !== null) {
      selection.setAttribute('x', Math.min(dragFrom, px));
      selection.setAttribute('width', Math.abs(px - dragFrom));
      selection.setAttribute('visibility', 'visible');
    }
    const x = invert(px);
    cursor.replaceChildren(svgEl('line', { x1: px, x2: px, y1: T, y2: H - B, stroke: '#9ca3af' }));
    const rows = [];
    for (const { s, colour, pts } of drawn) {
      if (!pts.length) continue;
      const p = pts[nearest(pts, x)];
      if (p[0] < x0 || p[0] > x1) continue;
      cursor.append(svgEl('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 3, fill: colour }));
      rows.push({ name: s.name, colour, x: p[0], y: p[1] });
    }
    cursor.setAttribute('visibility', 'visible');
    showTip(tip, svg, event, rows.sort((a, b) => b.y - a.y), opts.xLabel || 'step');
  });
  overlay.addEventListener('mouseleave', () => { cursor.setAttribute('visibility', 'hidden'); tip.hidden = true; });
  overlay.addEventListener('mousedown', (event) => { dragFrom = svgPoint(svg, event).x; event.preventDefault(); });
  overlay.addEventListener('mouseup', (event) => {
    if (dragFrom === null) return;
    const px = svgPoint(svg, event).x;
    const from = dragFrom;
    dragFrom = null;
    selection.setAttribute('visibility', 'hidden');
    if (Math.abs(px - from) > 4 && opts.onZoom) opts.onZoom([invert(Math.min(px, from)), invert(Math.max(px, from))]);
  });
  overlay.addEventListener('dblclick', () => opts.onZoom && opts.onZoom(null));
}

function showTip(tip, svg, event, rows, xLabel) {
  if (rows.length === 0) { tip.hidden = true; return; }
  const shown = rows.slice(0, 12);
  tip.replaceChildren();
  const head = document.createElement('div');
  head.className = 'tip-head';
  head.textContent = xLabel + ' ' + fmt(shown[0].x);
  tip.append(head);
  for (const r of shown) {
    const line = document.createElement('div');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = r.colour;
    line.append(swatch, r.name + ': ' + fmt(r.y));
    tip.append(line);
  }
  if (rows.length > shown.length) tip.append(`… ${rows.length - shown.length} more`);
  const box = svg.parentNode.getBoundingClientRect();
  const left = event.clientX - box.left + 14;
  tip.style.left = Math.min(left, box.width - 180) + 'px';
  tip.style.top = event.clientY - box.top + 10 + 'px';
  tip.hidden = false;
}

/**
 * Accuracy or ECE against sparsity: x is log10(1 / density) labelled as sparsity, one point per
 * (group, density) at the mean over seeds with ± one sample sd as an error bar, a line per group; the
 * dense runs as a dashed reference line.
 * groups: [{ name, colour, points: [{ density, mean, sd, n, runs }] }], dense: { mean, sd, n } | undefined
 */
function sparsityChart(svg, groups, dense, opts) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const pts = groups.flatMap((g) => g.points);
  if (pts.length === 0 && !dense) return emptyChart(svg, opts.empty || 'no finished runs yet');
  const u = (d) => Math.log10(1 / d);
  const us = pts.map((p) => u(p.density));
  let u0 = Math.min(0, ...us), u1 = Math.max(0.5, ...us);
  const pad = (u1 - u0) * 0.08; u0 -= pad; u1 += pad;
  const ys = pts.flatMap((p) => [p.mean - (p.sd || 0), p.mean + (p.sd || 0)]).concat(dense ? [dense.mean] : []);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (opts.yMin !== undefined) y0 = Math.min(y0, opts.yMin);
  if (y1 === y0) { const d = Math.max(1e-3, Math.abs(y0) * 0.1); y0 -= d; y1 += d; }
  const ypad = (y1 - y0) * 0.08; y1 += ypad; if (opts.yMin === undefined) y0 -= ypad;
  const sx = (d) => L + ((u(d) - u0) / (u1 - u0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  for (const v of ticks(y0, y1, 4)) {
    if (v < y0 || v > y1) continue;
    svg.append(svgEl('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v), stroke: '#eef0f3' }));
    svg.append(svgEl('text', { x: L - 4, y: sy(v) + 3, 'text-anchor': 'end', 'font-size': 10, fill: '#6b7280' }, fmt(v)));
  }
  const densities = [...new Set(pts.map((p) => p.density))].sort((a, b) => b - a);
  for (const d of densities) {
    svg.append(svgEl('line', { x1: sx(d), x2: sx(d), y1: T, y2: H - B, stroke: '#f3f4f6' }));
    svg.append(svgEl('text', { x: sx(d), y: H - B + 13, 'text-anchor': 'middle', 'font-size': 10, fill: '#6b7280' }, Number((100 * (1 - d)).toPrecision(3)) + '%'));
  }
  svg.append(svgEl('text', { x: (L + W - R) / 2, y: H - 3, 'text-anchor': 'middle', 'font-size': 10, fill: '#6b7280' }, 'sparsity (log scale of 1 / density)'));
  svg.append(svgEl('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none', stroke: '#c9ced6' }));
  if (dense) {
    svg.append(svgEl('line', { x1: L, x2: W - R, y1: sy(dense.mean), y2: sy(dense.mean), stroke: '#374151', 'stroke-dasharray': '5 3', class: 'dense-ref' }));
    svg.append(svgEl('text', { x: W - R - 3, y: sy(dense.mean) - 3, 'text-anchor': 'end', 'font-size': 9, fill: '#374151' }, `dense ${fmt(dense.mean)}${dense.n > 1 ? ' ± ' + fmt(dense.sd) : ''}`));
  }
  groups.forEach((g, i) => {
    const colour = g.colour || PALETTE[i % PALETTE.length];
    const sorted = g.points.slice().sort((a, b) => b.density - a.density);
    if (sorted.length > 1) svg.append(svgEl('path', { d: sorted.map((p, j) => (j ? 'L' : 'M') + sx(p.density).toFixed(1) + ' ' + sy(p.mean).toFixed(1)).join(''), fill: 'none', stroke: colour, 'stroke-width': 1.5 }));
    for (const p of sorted) {
      if (p.n > 1) svg.append(svgEl('line', { x1: sx(p.density), x2: sx(p.density), y1: sy(p.mean - p.sd), y2: sy(p.mean + p.sd), stroke: colour, 'stroke-width': 1.5 }));
      const dot = svgEl('circle', { cx: sx(p.density), cy: sy(p.mean), r: 3.5, fill: colour, class: 'point', 'data-group': g.name, 'data-density': p.density, 'data-n': p.n });
      dot.append(svgEl('title', {}, `${g.name} · density ${p.density}: ${fmt(p.mean)}${p.n > 1 ? ' ± ' + fmt(p.sd) : ''} (${p.n} run${p.n === 1 ? '' : 's'}: ${p.runs.join(', ')})`));
      svg.append(dot);
    }
  });
  let lx = L + 6;
  groups.forEach((g, i) => {
    const colour = g.colour || PALETTE[i % PALETTE.length];
    svg.append(svgEl('circle', { cx: lx + 3, cy: T + 9, r: 3, fill: colour }), svgEl('text', { x: lx + 9, y: T + 12, 'font-size': 10, fill: '#374151' }, g.name));
    lx += 20 + g.name.length * 5.6;
  });
}

/**
 * A small reliability diagram: accuracy per confidence bin as bars (T = 1), the diagonal, and the
 * temperature-scaled bins as dots. bins: [lower, upper, count, confidence, accuracy] per bin.
 */
function reliabilityChart(svg, reliability, ece) {
  const S = 200, P = 24;
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${S} ${S}`);
  const sx = (v) => P + v * (S - P - 6);
  const sy = (v) => S - P - v * (S - P - 6);
  svg.append(svgEl('rect', { x: sx(0), y: sy(1), width: sx(1) - sx(0), height: sy(0) - sy(1), fill: 'none', stroke: '#c9ced6' }));
  for (const [lower, upper, count, , accuracy] of reliability.before) {
    if (!count || accuracy === null) continue;
    svg.append(svgEl('rect', { x: sx(lower) + 0.5, y: sy(accuracy), width: Math.max(0, sx(upper) - sx(lower) - 1), height: sy(0) - sy(accuracy), fill: '#3b6fb6', 'fill-opacity': 0.75, class: 'bin' }));
  }
  svg.append(svgEl('line', { x1: sx(0), y1: sy(0), x2: sx(1), y2: sy(1), stroke: '#374151', 'stroke-dasharray': '4 3' }));
  for (const [lower, upper, count, , accuracy] of reliability.after || []) {
    if (!count || accuracy === null) continue;
    svg.append(svgEl('circle', { cx: (sx(lower) + sx(upper)) / 2, cy: sy(accuracy), r: 2.2, fill: '#e0474c' }));
  }
  for (const v of [0, 0.5, 1]) {
    svg.append(svgEl('text', { x: sx(v), y: S - P + 12, 'text-anchor': 'middle', 'font-size': 9, fill: '#6b7280' }, String(v)));
    svg.append(svgEl('text', { x: P - 3, y: sy(v) + 3, 'text-anchor': 'end', 'font-size': 9, fill: '#6b7280' }, String(v)));
  }
  svg.append(svgEl('text', { x: (sx(0) + sx(1)) / 2, y: S - 2, 'text-anchor': 'middle', 'font-size': 9, fill: '#6b7280' }, 'confidence'));
  if (ece !== undefined) svg.append(svgEl('text', { x: sx(0) + 4, y: sy(1) + 11, 'font-size': 10, fill: '#1d2330' }, 'ECE' + reliability.bins + ' ' + fmt(ece)));
}
