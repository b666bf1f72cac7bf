import { SvgBuilder, svgToPng } from '../calibrate/reliability';
import { checkFigureSize, drawLegend, drawLine, drawPanel, labelledTicks, legendWidth, niceRange, niceTicks, type Rect } from './chart';
import type { EpochRow } from './epochs';

/**
 * A run's training curves from its per-epoch table, three panels side by side: accuracy (%), NLL and ECE
 * (15 bins) per epoch, for the training split (running means over each epoch's batches), the validation
 * split and the test split (each where the table has it). The over-fitting pilot's figure.
 */
export interface TrainingCurvesOptions {
  /** Pixels; default 1320. */
  readonly width?: number;
  /** Pixels; default 460. */
  readonly height?: number;
  readonly title?: string;
}

const SPLITS = [
  { name: 'train', label: 'training (running, per epoch)', colour: '#2e6fba', fields: { accuracy: 'trainAccuracy', nll: 'trainLoss', ece: undefined } },
  { name: 'val', label: 'validation', colour: '#e09f3e', fields: { accuracy: 'valAccuracy', nll: 'valLoss', ece: 'valEce15' } },
  { name: 'test', label: 'test', colour: '#d1495b', fields: { accuracy: 'testAccuracy', nll: 'testLoss', ece: 'testEce15' } },
] as const;

type Metric = 'accuracy' | 'nll' | 'ece';
const PANELS: readonly { metric: Metric; title: string; yLabel: string; scale: number }[] = [
  { metric: 'accuracy', title: 'Accuracy', yLabel: 'Accuracy (%)', scale: 100 },
  { metric: 'nll', title: 'NLL (cross-entropy)', yLabel: 'NLL', scale: 1 },
  { metric: 'ece', title: 'ECE (15 bins)', yLabel: 'ECE (15 bins)', scale: 1 },
];

function series(rows: readonly EpochRow[], field: keyof EpochRow | undefined): [number, number][] {
  if (!field) return [];
  return rows.flatMap((r) => (r[field] === undefined ? [] : [[r.epoch, r[field]!] as [number, number]]));
}

export function trainingCurvesSvg(rows: readonly EpochRow[], options: TrainingCurvesOptions = {}): string {
  const width = options.width ?? 1320;
  const height = options.height ?? 460;
  checkFigureSize(width, height, 'training curves');
  if (rows.length === 0) throw new Error('training curves: the per-epoch table is empty');
  const present = SPLITS.filter((s) => Object.values(s.fields).some((f) => series(rows, f).length > 0));
  const legend = present.map((s) => ({ label: s.label, colour: s.colour }));

  const font = Math.max(10, Math.round(Math.min(width / 2.2, height) / 32));
  const legendW = Math.min(Math.round(width / 4), legendWidth(legend, font));
  const gap = Math.round(font * 5.5);
  const left = Math.round(font * 5);
  const right = width - legendW - Math.round(font * 1.5);
  const panelWidth = (right - left - 2 * gap) / 3;
  const top = Math.round(font * 4.6);
  const bottom = height - Math.round(font * 4.8);

  const svg = SvgBuilder.figure(width, height, font, options.title ?? 'Training curves');
  const lastEpoch = rows[rows.length - 1].epoch;
  const xValues = niceRange(Math.max(0, rows[0].epoch - 1), lastEpoch).filter((v) => Number.isInteger(v));
  PANELS.forEach((panel, i) => {
    const r: Rect = { left: left + i * (panelWidth + gap), top, right: left + i * (panelWidth + gap) + panelWidth, bottom };
    const lines = present.map((s) => ({ split: s, points: series(rows, s.fields[panel.metric]) })).filter((l) => l.points.length > 0);
    const values = lines.flatMap((l) => l.points.map(([, v]) => v));
    const [low, high] = values.length > 0 ? [Math.min(...values), Math.max(...values)] : [0, 1];
    const yValues = panel.metric === 'accuracy' ? niceRange(Math.max(0, low - (high - low) * 0.05), Math.min(1, high + (high - low) * 0.05)) : niceTicks(high * 1.05);
    const [yMin, yMax] = [yValues[0], yValues[yValues.length - 1]];
    const [xMin, xMax] = [xValues[0], Math.max(xValues[xValues.length - 1], lastEpoch)];
    const x = (v: number) => r.left + ((v - xMin) / (xMax - xMin || 1)) * (r.right - r.left);
    const y = (v: number) => r.bottom - ((v - yMin) / (yMax - yMin || 1)) * (r.bottom - r.top);
    drawPanel(svg, r, { x, y, xTicks: labelledTicks(xValues), yTicks: labelledTicks(yValues, panel.scale), xLabel: 'Epoch', yLabel: panel.yLabel, title: panel.title }, font);
    for (const l of lines) {
      drawLine(svg, l.points.map(([e, v]) => [x(e), y(v)]), l.split.colour);
      if (l.points.length === 1) svg.element('circle', { cx: x(l.points[0][0]), cy: y(l.points[0][1]), r: font * 0.3, fill: l.split.colour });
    }
  });
  drawLegend(svg, right + font * 0.9, top, legend, font);
  svg.close('svg');
  return svg.toString() + '\n';
}

export async function trainingCurvesPng(rows: readonly EpochRow[], options: TrainingCurvesOptions = {}): Promise<Buffer> {
  return svgToPng(trainingCurvesSvg(rows, options));
}
