import type { SvgBuilder } from '../calibrate/reliability';
import type { MetricStats } from './comparison';

/**
 * The drawing pieces the study's figures share (the sweep's ECE/accuracy-vs-sparsity panels, the pilot's
 * training curves): a panel with its grid, ticks, frame and axis labels; a legend; points with error
 * bars. Every figure is an SvgBuilder document rendered to PNG with svgToPng.
 */

export const GRID = '#e4e4e4';
export const AXIS = '#222222';

/** A plotting area in pixels. */
export interface Rect {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

export interface Tick {
  readonly value: number;
  readonly label: string;
}

export interface PanelAxes {
  /** Value → pixel. */
  readonly x: (v: number) => number;
  readonly y: (v: number) => number;
  readonly xTicks: readonly Tick[];
  readonly yTicks: readonly Tick[];
  readonly xLabel: string;
  readonly yLabel: string;
  /** Bold line above the panel. */
  readonly title?: string;
}

/** Round tick values covering [0, max]: steps of 1, 2, 2.5 or 5 × 10^k, about five of them. */
export function niceTicks(max: number): number[] {
  return niceRange(0, max);
}

/** Round tick values covering [min, max] (min ≥ 0), about five of them, starting at a multiple of the step. */
export function niceRange(min: number, max: number): number[] {
  if (!(max > min)) return max > 0 ? niceRange(0, max) : [0, 1];
  const raw = (max - min) / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  const first = Math.floor(min / step + 1e-9);
  for (let i = first; i * step < max + step * 1e-9; i++) ticks.push(Number((i * step).toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number(((first + ticks.length) * step).toPrecision(12)));
  return ticks;
}

/** Ticks at round values labelled with the decimals that show every one exactly. */
export function labelledTicks(values: readonly number[], scale = 1): Tick[] {
  const digits = Math.max(...values.map((v) => (String(Number((v * scale).toPrecision(12))).split('.')[1] ?? '').length));
  return values.map((value) => ({ value, label: (value * scale).toFixed(digits) }));
}

/** Grid, ticks with labels, frame, axis labels and the panel title. Ticks crowding each other alternate rows. */
export function drawPanel(svg: SvgBuilder, r: Rect, axes: PanelAxes, font: number): void {
  for (const t of axes.yTicks) {
    svg.element('line', { x1: r.left, y1: axes.y(t.value), x2: r.right, y2: axes.y(t.value), stroke: GRID, 'stroke-width': 1 });
    svg.element('text', { x: r.left - font * 0.4, y: axes.y(t.value) + font * 0.35, 'text-anchor': 'end' }, t.label);
  }
  let lastLabelX = -Infinity;
  let row = 0;
  for (const t of axes.xTicks) {
    const x = axes.x(t.value);
    svg.element('line', { x1: x, y1: r.top, x2: x, y2: r.bottom, stroke: GRID, 'stroke-width': 1 });
    svg.element('line', { x1: x, y1: r.bottom, x2: x, y2: r.bottom + font * 0.3, stroke: AXIS, 'stroke-width': 1 });
    row = x - lastLabelX < font * 0.62 * (t.label.length + 1.2) ? 1 - row : 0;
    lastLabelX = x;
    svg.element('text', { x, y: r.bottom + font * (1.3 + row * 1.1), 'text-anchor': 'middle' }, t.label);
  }
  svg.element('rect', { x: r.left, y: r.top, width: r.right - r.left, height: r.bottom - r.top, fill: 'none', stroke: AXIS, 'stroke-width': 1.2 });
  svg.element('text', { x: (r.left + r.right) / 2, y: r.bottom + font * 3.4, 'text-anchor': 'middle' }, axes.xLabel);
  const cy = (r.top + r.bottom) / 2;
  const cx = r.left - font * 3.6;
  svg.element('text', { x: cx, y: cy, 'text-anchor': 'middle', transform: `rotate(-90 ${cx} ${cy})` }, axes.yLabel);
  if (axes.title) svg.element('text', { x: (r.left + r.right) / 2, y: r.top - font * 0.6, 'text-anchor': 'middle', 'font-weight': 'bold' }, axes.title);
}

export interface LegendEntry {
  readonly label: string;
  readonly colour: string;
  /** A dashed line (a reference, or a second split). */
  readonly dashed?: boolean;
  /** A dot on the line (series drawn with markers). */
  readonly marker?: boolean;
}

/** Width in pixels of a legend with these entries (about 0.62 em per character in DejaVu Sans). */
export function legendWidth(entries: readonly LegendEntry[], font: number): number {
  return Math.round(font * (3.6 + 0.62 * Math.max(...entries.map((e) => e.label.length))));
}

/** A boxed legend with its top-left corner at (x, y). */
export function drawLegend(svg: SvgBuilder, x: number, y: number, entries: readonly LegendEntry[], font: number): void {
  svg.element('rect', { x, y, width: legendWidth(entries, font), height: font * (1.5 * entries.length + 0.6), fill: 'white', stroke: GRID });
  let ly = y + font * 1.05;
  for (const e of entries) {
    const lx = x + font * 0.5;
    svg.element('line', { x1: lx, y1: ly, x2: lx + font * 2, y2: ly, stroke: e.colour, 'stroke-width': 2.2, ...(e.dashed ? { 'stroke-dasharray': '7 5' } : {}) });
    if (e.marker) svg.element('circle', { cx: lx + font, cy: ly, r: font * 0.3, fill: e.colour });
    svg.element('text', { x: lx + font * 2.6, y: ly + font * 0.35 }, e.label);
    ly += font * 1.5;
  }
}

/** A polyline through the points (pixel coordinates rounded to 0.01). */
export function drawLine(svg: SvgBuilder, points: readonly [number, number][], colour: string, dashed = false): void {
  if (points.length < 2) return;
  svg.element('polyline', {
    points: points.map(([x, y]) => `${round(x)},${round(y)}`).join(' '),
    fill: 'none',
    stroke: colour,
    'stroke-width': 2.2,
    ...(dashed ? { 'stroke-dasharray': '7 5' } : {}),
  });
}

/** A dot at the mean, with a bar of ± one sample standard deviation (and caps) when there is a spread. */
export function drawPointWithError(svg: SvgBuilder, cx: number, stats: MetricStats, y: (v: number) => number, colour: string, font: number): void {
  if (stats.std !== undefined && stats.std > 0) {
    const cap = font * 0.35;
    const [lo, hi] = [y(Math.max(0, stats.mean - stats.std)), y(stats.mean + stats.std)];
    svg.element('line', { x1: cx, y1: lo, x2: cx, y2: hi, stroke: colour, 'stroke-width': 1.5 });
    svg.element('line', { x1: cx - cap, y1: lo, x2: cx + cap, y2: lo, stroke: colour, 'stroke-width': 1.5 });
    svg.element('line', { x1: cx - cap, y1: hi, x2: cx + cap, y2: hi, stroke: colour, 'stroke-width': 1.5 });
  }
  svg.element('circle', { cx, cy: y(stats.mean), r: font * 0.32, fill: colour, stroke: 'white', 'stroke-width': 1 });
}

export function checkFigureSize(width: number, height: number, figure: string): void {
  for (const [v, what] of [[width, 'width'], [height, 'height']] as const) {
    if (!(Number.isInteger(v) && v >= 300 && v <= 8000)) throw new Error(`${figure}: ${what} must be an integer number of pixels in [300, 8000], got ${v}`);
  }
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}
