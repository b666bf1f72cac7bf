import { SvgBuilder, svgToPng } from '../calibrate/reliability';
import { formatSparsity, type ComparisonGroup, type MetricStats } from './comparison';

/**
 * The ECE-vs-sparsity plot of a sweep: one line per label (method or variant) through the mean headline
 * ECE at each swept sparsity, with ± one sample standard deviation as error bars; the dense model, which
 * has no sparsity to vary, is drawn as a dashed horizontal reference line (and its point at 0%).
 *
 * The x axis is log(1 / density), so that 90%, 95% and 99% sparsity (density 0.1, 0.05, 0.01) are
 * spread evenly instead of crowding at the right edge; ticks sit at the swept sparsities only.
 */
export interface EceSparsityPlotOptions {
  /** ECE bin count to plot (a key of StageResult.ece); default "15" when present. */
  readonly bins?: string;
  /** Pixels; default 820. */
  readonly width?: number;
  /** Pixels; default 500. */
  readonly height?: number;
  /** First title line; default 'ECE vs sparsity'. */
  readonly title?: string;
}

const PALETTE: Readonly<Record<string, string>> = { dense: '#555555', rigl: '#d1495b', cigl: '#2e6fba' };
const EXTRA = ['#2a9d8f', '#e09f3e', '#8e5ea2', '#6b8e23', '#c2185b', '#00838f'];
const GRID = '#e4e4e4';
const AXIS = '#222222';

/** A colour per label: fixed ones for dense, RigL and CigL, the palette in order for the rest. */
function colours(labels: readonly string[]): Map<string, string> {
  let next = 0;
  return new Map(labels.map((l) => [l, PALETTE[l] ?? EXTRA[next++ % EXTRA.length]]));
}

/** Round tick values covering [0, max]: steps of 1, 2, 2.5 or 5 × 10^k, about five of them. */
export function niceTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let i = 0; i * step < max + step * 1e-9; i++) ticks.push(Number((i * step).toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

/** Decimals that show every tick exactly (ticks are clean decimals, see niceTicks). */
function decimals(ticks: readonly number[]): number {
  return Math.max(...ticks.map((t) => (String(t).split('.')[1] ?? '').length));
}

/** The plot as an SVG document of exactly width × height pixels. */
export function eceVsSparsitySvg(groups: readonly ComparisonGroup[], options: EceSparsityPlotOptions = {}): string {
  const width = options.width ?? 820;
  const height = options.height ?? 500;
  for (const [v, what] of [[width, 'width'], [height, 'height']] as const) {
    if (!(Number.isInteger(v) && v >= 300 && v <= 8000)) throw new Error(`ECE-vs-sparsity plot: ${what} must be an integer number of pixels in [300, 8000], got ${v}`);
  }
  const bins = options.bins ?? (groups.some((g) => g.headline.ece['15']) ? '15' : Object.keys(groups[0]?.headline.ece ?? {}).sort((a, b) => Number(b) - Number(a))[0]);
  const points = groups.flatMap((g) => {
    const ece = g.headline.ece[bins ?? ''];
    return ece ? [{ label: g.label, density: g.density, ece, calibrated: g.headline.calibrated }] : [];
  });
  if (points.length === 0) throw new Error(`ECE-vs-sparsity plot: no run reports ECE with ${bins ?? 'any'} bins`);
  if (points.some((p) => !(p.density > 0 && p.density <= 1))) throw new Error('ECE-vs-sparsity plot: densities must be in (0, 1]');
  const labels = [...new Set(points.map((p) => p.label))];
  const colour = colours(labels);

  const font = Math.max(10, Math.round(Math.min(width, height) / 34));
  // Wide enough for the longest label (about 0.62 em per character in DejaVu Sans), at most a third of the width.
  const legendWidth = Math.round(Math.min(width / 3, font * (3.6 + 0.62 * Math.max(...labels.map((l) => l.length)))));
  const plot = { left: Math.round(font * 5), top: Math.round(font * 4.2), right: width - legendWidth - Math.round(font * 1.5), bottom: height - Math.round(font * 4.4) };
  const u = (density: number) => Math.log10(1 / density);
  const densities = [...new Set(points.map((p) => p.density))].sort((a, b) => b - a);
  const uMax = Math.max(u(densities[densities.length - 1]), 0.5);
  const uPad = uMax * 0.06;
  const x = (density: number) => plot.left + ((u(density) + uPad) / (uMax + 2 * uPad)) * (plot.right - plot.left);
  const top = Math.max(...points.map((p) => p.ece.mean + (p.ece.std ?? 0))) * 1.08;
  const yTicks = niceTicks(top);
  const yMax = yTicks[yTicks.length - 1];
  const y = (v: number) => plot.bottom - (v / yMax) * (plot.bottom - plot.top);

  const svg = SvgBuilder.figure(width, height, font, options.title ?? 'ECE vs sparsity');
  const stageNote = points.every((p) => !p.calibrated) ? 'before temperature scaling' : 'headline stage';
  const seeds = [...new Set(groups.map((g) => g.seeds.length))];
  svg.element(
    'text',
    { x: width / 2, y: font * 2.8, 'text-anchor': 'middle' },
    `ECE (${bins} bins), ${stageNote}; mean ± sample std over ${seeds.length === 1 ? seeds[0] : `${Math.min(...seeds)}–${Math.max(...seeds)}`} seed${seeds.length === 1 && seeds[0] === 1 ? '' : 's'}`,
  );

  // Grid and ticks: y at round values, x at the swept sparsities (labels moved down a row when crowded).
  for (const v of yTicks) {
    svg.element('line', { x1: plot.left, y1: y(v), x2: plot.right, y2: y(v), stroke: GRID, 'stroke-width': 1 });
    svg.element('text', { x: plot.left - font * 0.4, y: y(v) + font * 0.35, 'text-anchor': 'end' }, v.toFixed(decimals(yTicks)));
  }
  let lastLabelX = -Infinity;
  let row = 0;
  for (const d of densities) {
    svg.element('line', { x1: x(d), y1: plot.top, x2: x(d), y2: plot.bottom, stroke: GRID, 'stroke-width': 1 });
    svg.element('line', { x1: x(d), y1: plot.bottom, x2: x(d), y2: plot.bottom + font * 0.3, stroke: AXIS, 'stroke-width': 1 });
    row = x(d) - lastLabelX < font * 3.2 ? 1 - row : 0;
    lastLabelX = x(d);
    svg.element('text', { x: x(d), y: plot.bottom + font * (1.3 + row * 1.1), 'text-anchor': 'middle' }, formatSparsity(d));
  }
  svg.element('rect', { x: plot.left, y: plot.top, width: plot.right - plot.left, height: plot.bottom - plot.top, fill: 'none', stroke: AXIS, 'stroke-width': 1.2 });
  svg.element('text', { x: (plot.left + plot.right) / 2, y: height - font * 0.9, 'text-anchor': 'middle' }, 'Sparsity (axis: log of 1 / density)');
  const cy = (plot.top + plot.bottom) / 2;
  const cx = font * 1.3;
  svg.element('text', { x: cx, y: cy, 'text-anchor': 'middle', transform: `rotate(-90 ${cx} ${cy})` }, `ECE (${bins} bins)`);

  // Dense reference lines, then one line per label; error bars offset a little per label so they stay apart.
  const sparseLabels = labels.filter((l) => points.some((p) => p.label === l && p.density < 1));
  for (const p of points.filter((q) => q.density === 1 && !sparseLabels.includes(q.label))) {
    svg.element('line', { x1: plot.left, y1: y(p.ece.mean), x2: plot.right, y2: y(p.ece.mean), stroke: colour.get(p.label)!, 'stroke-width': 1.5, 'stroke-dasharray': '7 5' });
  }
  labels.forEach((label, i) => {
    const offset = (i - (labels.length - 1) / 2) * Math.max(3, font * 0.35);
    const own = points.filter((p) => p.label === label).sort((a, b) => b.density - a.density);
    const c = colour.get(label)!;
    if (own.length > 1) {
      svg.element('polyline', { points: own.map((p) => `${round(x(p.density) + offset)},${round(y(p.ece.mean))}`).join(' '), fill: 'none', stroke: c, 'stroke-width': 2.2 });
    }
    for (const p of own) errorBar(svg, x(p.density) + offset, p.ece, y, c, font);
  });

  // Legend, right of the plot.
  const lx = plot.right + font * 1.2;
  let ly = plot.top + font * 0.6;
  svg.element('rect', { x: lx - font * 0.5, y: ly - font * 0.9, width: legendWidth - font * 0.2, height: font * (1.5 * labels.length + 0.8), fill: 'white', stroke: GRID });
  for (const label of labels) {
    const c = colour.get(label)!;
    const reference = !sparseLabels.includes(label);
    svg.element('line', { x1: lx, y1: ly, x2: lx + font * 2, y2: ly, stroke: c, 'stroke-width': reference ? 1.5 : 2.2, ...(reference ? { 'stroke-dasharray': '7 5' } : {}) });
    svg.element('circle', { cx: lx + font, cy: ly, r: font * 0.3, fill: c });
    svg.element('text', { x: lx + font * 2.6, y: ly + font * 0.35 }, label);
    ly += font * 1.5;
  }
  svg.close('svg');
  return svg.toString() + '\n';
}

function errorBar(svg: SvgBuilder, cx: number, ece: MetricStats, y: (v: number) => number, c: string, font: number): void {
  if (ece.std !== undefined && ece.std > 0) {
    const cap = font * 0.35;
    const [lo, hi] = [y(Math.max(0, ece.mean - ece.std)), y(ece.mean + ece.std)];
    svg.element('line', { x1: cx, y1: lo, x2: cx, y2: hi, stroke: c, 'stroke-width': 1.5 });
    svg.element('line', { x1: cx - cap, y1: lo, x2: cx + cap, y2: lo, stroke: c, 'stroke-width': 1.5 });
    svg.element('line', { x1: cx - cap, y1: hi, x2: cx + cap, y2: hi, stroke: c, 'stroke-width': 1.5 });
  }
  svg.element('circle', { cx, cy: y(ece.mean), r: font * 0.32, fill: c, stroke: 'white', 'stroke-width': 1 });
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/** The plot as PNG bytes of options.width × options.height pixels. */
export async function eceVsSparsityPng(groups: readonly ComparisonGroup[], options: EceSparsityPlotOptions = {}): Promise<Buffer> {
  return svgToPng(eceVsSparsitySvg(groups, options));
}
