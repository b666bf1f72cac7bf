import { SvgBuilder, svgToPng } from '../calibrate/reliability';
import { checkFigureSize, drawLegend, drawLine, drawPanel, drawPointWithError, labelledTicks, legendWidth, niceRange, niceTicks, type Rect } from './chart';
import { formatSparsity, type ComparisonGroup, type MetricStats } from './comparison';

export { niceTicks };

/**
 * The sweep's figure of ECE and accuracy against sparsity (the paper's Figure 1c, plus accuracy), two
 * panels side by side: one line per label (method or variant) through the mean headline value at each
 * swept sparsity, with ± one sample standard deviation as error bars; the dense model, which has no
 * sparsity to vary, is drawn as a dashed horizontal reference line (and its point at 0%).
 *
 * The x axis is log(1 / density), so that 90%, 95% and 99% sparsity (density 0.1, 0.05, 0.01) are
 * spread evenly instead of crowding at the right edge; ticks sit at the swept sparsities only.
 */
export interface SparsityFigureOptions {
  /** ECE bin count to plot (a key of StageResult.ece); default "15" when present. */
  readonly bins?: string;
  /** Pixels; default 1100. */
  readonly width?: number;
  /** Pixels; default 500. */
  readonly height?: number;
  /** First title line; default 'ECE and accuracy vs sparsity'. */
  readonly title?: string;
}

const PALETTE: Readonly<Record<string, string>> = { dense: '#555555', rigl: '#d1495b', cigl: '#2e6fba' };
const EXTRA = ['#2a9d8f', '#e09f3e', '#8e5ea2', '#6b8e23', '#c2185b', '#00838f'];

/** A colour per label: fixed ones for dense, RigL and CigL, the palette in order for the rest. */
export function labelColours(labels: readonly string[]): Map<string, string> {
  let next = 0;
  return new Map(labels.map((l) => [l, PALETTE[l] ?? EXTRA[next++ % EXTRA.length]]));
}

interface Point {
  readonly label: string;
  readonly density: number;
  readonly value: MetricStats;
}

/** The figure as an SVG document of exactly width × height pixels. */
export function sparsityFigureSvg(groups: readonly ComparisonGroup[], options: SparsityFigureOptions = {}): string {
  const width = options.width ?? 1100;
  const height = options.height ?? 500;
  checkFigureSize(width, height, 'sparsity figure');
  const bins = options.bins ?? (groups.some((g) => g.headline.ece['15']) ? '15' : Object.keys(groups[0]?.headline.ece ?? {}).sort((a, b) => Number(b) - Number(a))[0]);
  const withEce = groups.filter((g) => g.headline.ece[bins ?? '']);
  if (withEce.length === 0) throw new Error(`sparsity figure: no run reports ECE with ${bins ?? 'any'} bins`);
  if (groups.some((g) => !(g.density > 0 && g.density <= 1))) throw new Error('sparsity figure: densities must be in (0, 1]');
  const ece: Point[] = withEce.map((g) => ({ label: g.label, density: g.density, value: g.headline.ece[bins!] }));
  const accuracy: Point[] = withEce.map((g) => ({ label: g.label, density: g.density, value: g.headline.accuracy }));
  const labels = [...new Set(ece.map((p) => p.label))];
  const colour = labelColours(labels);
  const sparseLabels = labels.filter((l) => ece.some((p) => p.label === l && p.density < 1));
  const legend = labels.map((label) => ({ label, colour: colour.get(label)!, dashed: !sparseLabels.includes(label), marker: true }));

  const font = Math.max(10, Math.round(Math.min(width / 1.6, height) / 34));
  const legendW = Math.min(Math.round(width / 4), legendWidth(legend, font));
  const gap = Math.round(font * 5.5);
  const left = Math.round(font * 5);
  const right = width - legendW - Math.round(font * 1.5);
  const panelWidth = (right - left - gap) / 2;
  const top = Math.round(font * 5.4);
  const bottom = height - Math.round(font * 4.8);
  const panels: Rect[] = [0, 1].map((i) => ({ left: left + i * (panelWidth + gap), top, right: left + i * (panelWidth + gap) + panelWidth, bottom }));

  const svg = SvgBuilder.figure(width, height, font, options.title ?? 'ECE and accuracy vs sparsity');
  const stageNote = withEce.every((g) => !g.headline.calibrated) ? 'before temperature scaling' : 'headline stage';
  const seeds = [...new Set(withEce.map((g) => g.seeds.length))];
  const seedText = seeds.length === 1 ? `${seeds[0]} seed${seeds[0] === 1 ? '' : 's'}` : `${Math.min(...seeds)}–${Math.max(...seeds)} seeds`;
  svg.element('text', { x: width / 2, y: font * 2.8, 'text-anchor': 'middle' }, `${stageNote}; mean ± sample std over ${seedText}`);

  drawSparsityPanel(svg, panels[0], ece, { title: `ECE (${bins} bins)`, yLabel: `ECE (${bins} bins)`, scale: 1, fromZero: true }, colour, sparseLabels, font);
  drawSparsityPanel(svg, panels[1], accuracy, { title: 'Accuracy', yLabel: 'Accuracy (%)', scale: 100, fromZero: false }, colour, sparseLabels, font);
  drawLegend(svg, right + font * 0.9, top, legend, font);
  svg.close('svg');
  return svg.toString() + '\n';
}

function drawSparsityPanel(
  svg: SvgBuilder,
  r: Rect,
  points: readonly Point[],
  axis: { title: string; yLabel: string; scale: number; fromZero: boolean },
  colour: Map<string, string>,
  sparseLabels: readonly string[],
  font: number,
): void {
  const u = (density: number) => Math.log10(1 / density);
  const densities = [...new Set(points.map((p) => p.density))].sort((a, b) => b - a);
  const uMax = Math.max(u(densities[densities.length - 1]), 0.5);
  const uPad = uMax * 0.06;
  const x = (density: number) => r.left + ((u(density) + uPad) / (uMax + 2 * uPad)) * (r.right - r.left);
  const high = Math.max(...points.map((p) => p.value.mean + (p.value.std ?? 0)));
  const low = Math.min(...points.map((p) => p.value.mean - (p.value.std ?? 0)));
  const span = Math.max(high - low, high * 0.02, 1e-6);
  const yValues = axis.fromZero ? niceTicks(high * 1.08) : niceRange(Math.max(0, low - span * 0.15), high + span * 0.15);
  const [yMin, yMax] = [yValues[0], yValues[yValues.length - 1]];
  const y = (v: number) => r.bottom - ((v - yMin) / (yMax - yMin)) * (r.bottom - r.top);
  drawPanel(
    svg,
    r,
    {
      x,
      y,
      xTicks: densities.map((d) => ({ value: d, label: formatSparsity(d) })),
      yTicks: labelledTicks(yValues, axis.scale),
      xLabel: 'Sparsity (axis: log of 1 / density)',
      yLabel: axis.yLabel,
      title: axis.title,
    },
    font,
  );

  // Dense reference lines, then one line per label; error bars offset a little per label so they stay apart.
  const labels = [...new Set(points.map((p) => p.label))];
  for (const p of points.filter((q) => q.density === 1 && !sparseLabels.includes(q.label))) {
    svg.element('line', { x1: r.left, y1: y(p.value.mean), x2: r.right, y2: y(p.value.mean), stroke: colour.get(p.label)!, 'stroke-width': 1.5, 'stroke-dasharray': '7 5' });
  }
  labels.forEach((label, i) => {
    const offset = (i - (labels.length - 1) / 2) * Math.max(3, font * 0.35);
    const own = points.filter((p) => p.label === label).sort((a, b) => b.density - a.density);
    const c = colour.get(label)!;
    drawLine(svg, own.map((p) => [x(p.density) + offset, y(p.value.mean)]), c);
    for (const p of own) drawPointWithError(svg, x(p.density) + offset, p.value, y, c, font);
  });
}

/** The figure as PNG bytes of options.width × options.height pixels. */
export async function sparsityFigurePng(groups: readonly ComparisonGroup[], options: SparsityFigureOptions = {}): Promise<Buffer> {
  return svgToPng(sparsityFigureSvg(groups, options));
}
