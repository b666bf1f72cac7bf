import sharp from 'sharp';
import type { BinRow } from './bins';
import type { EqualWidthCalibration } from './metrics';

/**
 * Reliability diagram of one equal-width binning: per-bin accuracy as bars against the diagonal of
 * perfect calibration, the gap between accuracy and mean confidence shaded, ECE and MCE in the title,
 * and beneath it the histogram of confidences (fraction of examples per bin) with the overall accuracy
 * and mean confidence marked. Built as an SVG string (every text escaped), rendered to PNG with sharp.
 */

export interface ReliabilityDiagramOptions {
  /** Pixels; default 640. */
  readonly width?: number;
  /** Pixels; default 720. */
  readonly height?: number;
  /** First title line, e.g. 'CigL, 90% sparse, test split'. The metrics make the second line. */
  readonly title?: string;
}

const COLOURS = {
  bar: '#3b6fb6',
  gap: '#e0474c',
  diagonal: '#444444',
  grid: '#e4e4e4',
  axis: '#222222',
  accuracy: '#3b6fb6',
  confidence: '#e0474c',
} as const;

/** Escapes text and attribute values for XML. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** A tiny SVG writer: elements with numeric attributes rounded to 0.01 px and escaped values. */
export class SvgBuilder {
  private readonly parts: string[] = [];

  element(name: string, attrs: Record<string, string | number>, text?: string): this {
    const attributes = Object.entries(attrs)
      .map(([k, v]) => ` ${k}="${escapeXml(typeof v === 'number' ? String(Math.round(v * 100) / 100) : v)}"`)
      .join('');
    this.parts.push(text === undefined ? `<${name}${attributes}/>` : `<${name}${attributes}>${escapeXml(text)}</${name}>`);
    return this;
  }

  open(name: string, attrs: Record<string, string | number> = {}): this {
    this.element(name, attrs);
    this.parts[this.parts.length - 1] = this.parts[this.parts.length - 1].replace(/\/>$/, '>');
    return this;
  }

  close(name: string): this {
    this.parts.push(`</${name}>`);
    return this;
  }

  toString(): string {
    return this.parts.join('\n');
  }

  /** Opens a figure: the <svg> root of width × height pixels, a white background and a bold title line. */
  static figure(width: number, height: number, font: number, title: string): SvgBuilder {
    const svg = new SvgBuilder();
    svg.open('svg', {
      xmlns: 'http://www.w3.org/2000/svg',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      'font-family': 'DejaVu Sans, Helvetica, Arial, sans-serif',
      'font-size': font,
    });
    svg.element('rect', { x: 0, y: 0, width, height, fill: 'white' });
    svg.element('text', { x: width / 2, y: font * 1.5, 'text-anchor': 'middle', 'font-size': font * 1.15, 'font-weight': 'bold' }, title);
    return svg;
  }
}

interface Panel {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

function checkSize(value: number, what: string): void {
  if (!(Number.isInteger(value) && value >= 200 && value <= 8000)) {
    throw new Error(`reliability diagram: ${what} must be an integer number of pixels in [200, 8000], got ${value}`);
  }
}

/** The diagram as an SVG document of exactly width × height pixels. */
export function reliabilityDiagramSvg(calibration: EqualWidthCalibration, options: ReliabilityDiagramOptions = {}): string {
  const width = options.width ?? 640;
  const height = options.height ?? 720;
  checkSize(width, 'width');
  checkSize(height, 'height');
  const table = calibration.table;
  const total = table.reduce((s, row) => s + row.count, 0);
  if (total === 0) throw new Error(`reliability diagram: ${calibration.label} has no examples`);
  const meanConfidence = table.reduce((s, row) => s + row.count * (row.meanConfidence ?? 0), 0) / total;
  const accuracy = table.reduce((s, row) => s + row.count * (row.accuracy ?? 0), 0) / total;

  const font = Math.max(10, Math.round(Math.min(width, height) / 42));
  const left = Math.round(font * 4.6);
  const plotWidth = width - left - Math.round(font * 1.5);
  const main: Panel = { left, top: Math.round(font * 4.4), width: plotWidth, height: Math.round(height * 0.56) };
  const histTop = main.top + main.height + Math.round(font * 4.4);
  const hist: Panel = { left, top: histTop, width: plotWidth, height: height - histTop - Math.round(font * 4) };
  const x = (p: Panel, v: number) => p.left + v * p.width;
  const y = (p: Panel, v: number) => p.top + (1 - v) * p.height;

  const svg = SvgBuilder.figure(width, height, font, options.title ?? 'Reliability diagram');
  svg.element(
    'text',
    { x: width / 2, y: font * 2.9, 'text-anchor': 'middle' },
    `${calibration.label} = ${calibration.ece.toFixed(4)} · MCE = ${calibration.mce.toFixed(4)} · N = ${total}`,
  );

  // Reliability panel: grid, bars of accuracy, shaded gaps to the mean confidence, the diagonal.
  drawGrid(svg, main, x, y, [0, 0.2, 0.4, 0.6, 0.8, 1], font, (v) => v.toFixed(1));
  for (const row of table) {
    if (row.count === 0 || row.accuracy === null || row.meanConfidence === null) continue;
    const x0 = x(main, row.lower);
    const w = x(main, row.upper) - x0;
    svg.element('rect', { x: x0, y: y(main, row.accuracy), width: w, height: main.height * row.accuracy, fill: COLOURS.bar, stroke: 'white', 'stroke-width': 1 });
    const top = Math.max(row.accuracy, row.meanConfidence);
    const gap = Math.abs(row.accuracy - row.meanConfidence);
    svg.element('rect', { x: x0, y: y(main, top), width: w, height: main.height * gap, fill: COLOURS.gap, 'fill-opacity': 0.35, stroke: COLOURS.gap, 'stroke-width': 1 });
  }
  svg.element('line', { x1: x(main, 0), y1: y(main, 0), x2: x(main, 1), y2: y(main, 1), stroke: COLOURS.diagonal, 'stroke-width': 1.5, 'stroke-dasharray': '6 4' });
  frame(svg, main);
  axisLabel(svg, main, 'Accuracy', font);
  legend(svg, main, font);

  // Histogram panel: fraction of examples per bin, overall accuracy and mean confidence marked.
  const fractions = table.map((row: BinRow) => row.count / total);
  const yMax = Math.max(0.1, Math.ceil(Math.max(...fractions) * 1.1 * 10) / 10);
  const yh = (p: Panel, v: number) => y(p, v / yMax);
  drawGrid(svg, hist, x, yh, [0, yMax / 2, yMax], font, (v) => v.toFixed(2), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  table.forEach((row, b) => {
    if (row.count === 0) return;
    const x0 = x(hist, row.lower);
    svg.element('rect', { x: x0, y: yh(hist, fractions[b]), width: x(hist, row.upper) - x0, height: (hist.height * fractions[b]) / yMax, fill: COLOURS.bar, stroke: 'white', 'stroke-width': 1 });
  });
  svg.element('line', { x1: x(hist, accuracy), y1: hist.top, x2: x(hist, accuracy), y2: hist.top + hist.height, stroke: COLOURS.axis, 'stroke-width': 2 });
  svg.element('line', { x1: x(hist, meanConfidence), y1: hist.top, x2: x(hist, meanConfidence), y2: hist.top + hist.height, stroke: COLOURS.confidence, 'stroke-width': 2, 'stroke-dasharray': '5 3' });
  // Above the panel, so that the labels never cover bars or the marker lines.
  svg.element('text', { x: hist.left, y: hist.top - font * 0.5 }, `— accuracy ${accuracy.toFixed(3)}`);
  svg.element('text', { x: hist.left + hist.width, y: hist.top - font * 0.5, 'text-anchor': 'end', fill: COLOURS.confidence }, `- - mean confidence ${meanConfidence.toFixed(3)}`);
  frame(svg, hist);
  axisLabel(svg, hist, 'Fraction', font);
  svg.element('text', { x: hist.left + hist.width / 2, y: hist.top + hist.height + font * 2.8, 'text-anchor': 'middle' }, 'Confidence');
  svg.close('svg');
  return svg.toString() + '\n';
}

/** Light grid lines with tick labels; x ticks default to the y ticks (the reliability panel is square in value). */
function drawGrid(
  svg: SvgBuilder,
  p: Panel,
  x: (p: Panel, v: number) => number,
  y: (p: Panel, v: number) => number,
  yTicks: readonly number[],
  font: number,
  format: (v: number) => string,
  xTicks: readonly number[] = yTicks,
): void {
  for (const v of xTicks) {
    svg.element('line', { x1: x(p, v), y1: p.top, x2: x(p, v), y2: p.top + p.height, stroke: COLOURS.grid, 'stroke-width': 1 });
    svg.element('text', { x: x(p, v), y: p.top + p.height + font * 1.3, 'text-anchor': 'middle' }, v.toFixed(1));
  }
  for (const v of yTicks) {
    svg.element('line', { x1: p.left, y1: y(p, v), x2: p.left + p.width, y2: y(p, v), stroke: COLOURS.grid, 'stroke-width': 1 });
    svg.element('text', { x: p.left - font * 0.4, y: y(p, v) + font * 0.35, 'text-anchor': 'end' }, format(v));
  }
}

function frame(svg: SvgBuilder, p: Panel): void {
  svg.element('rect', { x: p.left, y: p.top, width: p.width, height: p.height, fill: 'none', stroke: COLOURS.axis, 'stroke-width': 1.2 });
}

function axisLabel(svg: SvgBuilder, p: Panel, text: string, font: number): void {
  const cx = p.left - font * 3.6;
  const cy = p.top + p.height / 2;
  svg.element('text', { x: cx, y: cy, 'text-anchor': 'middle', transform: `rotate(-90 ${cx} ${cy})` }, text);
}

function legend(svg: SvgBuilder, p: Panel, font: number): void {
  const x0 = p.left + font * 0.8;
  let y0 = p.top + font * 0.9;
  const entries: [string, Record<string, string | number>][] = [
    ['Accuracy per bin', { fill: COLOURS.bar }],
    ['Gap to mean confidence', { fill: COLOURS.gap, 'fill-opacity': 0.35, stroke: COLOURS.gap }],
  ];
  svg.element('rect', { x: x0 - font * 0.4, y: y0 - font * 0.5, width: font * 13.5, height: font * 4.4, fill: 'white', 'fill-opacity': 0.85, stroke: COLOURS.grid });
  for (const [label, style] of entries) {
    svg.element('rect', { x: x0, y: y0, width: font * 1.6, height: font * 0.9, ...style });
    svg.element('text', { x: x0 + font * 2.1, y: y0 + font * 0.8 }, label);
    y0 += font * 1.3;
  }
  svg.element('line', { x1: x0, y1: y0 + font * 0.45, x2: x0 + font * 1.6, y2: y0 + font * 0.45, stroke: COLOURS.diagonal, 'stroke-width': 1.5, 'stroke-dasharray': '6 4' });
  svg.element('text', { x: x0 + font * 2.1, y: y0 + font * 0.8 }, 'Perfect calibration');
}

/** Renders an SVG document to PNG with sharp; the size comes from the SVG's width and height. */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg, 'utf8')).png().toBuffer();
}

/** The reliability diagram as PNG bytes of options.width × options.height pixels. */
export async function reliabilityDiagramPng(calibration: EqualWidthCalibration, options: ReliabilityDiagramOptions = {}): Promise<Buffer> {
  return svgToPng(reliabilityDiagramSvg(calibration, options));
}
