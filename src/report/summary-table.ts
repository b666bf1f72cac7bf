import * as path from 'node:path';
import { headlineResult, temperatureScaledResult, type LayerDensity, type ModelDensity, type RunSummary, type StageResult } from '../sinks/summary';
import { formatDuration } from './progress';

/**
 * The end-of-run summary as plain text (aligned columns, for a terminal) or Markdown (for reports):
 * accuracy and ECE per model stage (see STAGES in sinks/summary.ts) with the temperature-scaled numbers in
 * columns of their own, per-layer densities,
 * and the output paths.
 */
export type TableFormat = 'text' | 'markdown';

/** Right-aligns numeric columns ('r'), left-aligns the rest. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], format: TableFormat, align?: readonly ('l' | 'r')[]): string {
  const a = headers.map((_, i) => align?.[i] ?? 'l');
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (text: string, i: number) => (a[i] === 'r' ? text.padStart(widths[i]) : text.padEnd(widths[i]));
  if (format === 'markdown') {
    const line = (cells: readonly string[]) => `| ${cells.map((c, i) => cell(c, i)).join(' | ')} |`;
    const rule = `|${widths.map((w, i) => (a[i] === 'r' ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
    return [line(headers), rule, ...rows.map(line)].join('\n') + '\n';
  }
  const line = (cells: readonly string[]) => cells.map((c, i) => cell(c, i)).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

/**
 * Accuracy / ECE (per bin count) / NLL per model stage at T = 1, the headline stage marked; the
 * temperature-scaled numbers of the scaled model in columns of their own (T, ECE and NLL at T; accuracy
 * does not change with T), on that model's row.
 */
export function formatResultsTable(results: readonly StageResult[], format: TableFormat, headline?: string): string {
  const binCounts = [...new Set(results.flatMap((r) => Object.keys(r.ece)))].sort((x, y) => Number(y) - Number(x));
  const hasNll = results.some((r) => r.nll !== undefined);
  const scaled = temperatureScaledResult({ results });
  const models = results.filter((r) => r.temperature === undefined);
  const headlineStage = headlineResult({ results, headline })?.stage;
  const scaledStage = scaled?.scaled ?? headlineStage;
  const scaledBins = binCounts[0];
  const headers = [
    'Stage',
    'Accuracy',
    ...binCounts.map((b) => `ECE (${b} bins)`),
    ...(hasNll ? ['NLL'] : []),
    ...(scaled ? ['T', `ECE (${scaledBins} bins) at T`, ...(hasNll ? ['NLL at T'] : [])] : []),
  ];
  const rows = (models.length > 0 ? models : results).map((r) => {
    const ts = scaled && r.stage === scaledStage ? scaled : undefined;
    return [
      r.stage === headlineStage && models.length > 1 ? `${r.stage} (headline)` : r.stage,
      percent(r.accuracy),
      ...binCounts.map((b) => (r.ece[b] === undefined ? '' : r.ece[b].toFixed(4))),
      ...(hasNll ? [r.nll === undefined ? '' : r.nll.toFixed(4)] : []),
      ...(scaled
        ? [
            ts?.temperature === undefined ? '' : ts.temperature.toFixed(3),
            ts?.ece[scaledBins] === undefined ? '' : ts.ece[scaledBins].toFixed(4),
            ...(hasNll ? [ts?.nll === undefined ? '' : ts.nll.toFixed(4)] : []),
          ]
        : []),
    ];
  });
  return formatTable(headers, rows, format, ['l', ...headers.slice(1).map(() => 'r' as const)]);
}

/**
 * Weights / active / density per masked layer, then two labelled totals: over the masked layers (what
 * sparse.density sets) and, when `density` is known, over all parameters of the model.
 */
export function formatLayerTable(layers: readonly LayerDensity[], format: TableFormat, density?: ModelDensity): string {
  const total = layers.reduce((t, l) => ({ size: t.size + l.size, active: t.active + l.active }), { size: 0, active: 0 });
  const row = (name: string, size: number, active: number) => [name, String(size), String(active), size === 0 ? '' : (active / size).toFixed(4)];
  const rows = layers.map((l) => row(l.layer, l.size, l.active));
  if (layers.length > 0) rows.push(row('total, masked layers', total.size, total.active));
  if (density) rows.push(row('total, all parameters', density.all.weights, density.all.active));
  return formatTable(['Layer', 'Weights', 'Active', 'Density'], rows, format, ['l', 'r', 'r', 'r']);
}

export function formatSummary(summary: RunSummary, format: TableFormat = 'text'): string {
  const heading = (text: string) => (format === 'markdown' ? `### ${text}\n` : `${text}\n`);
  const relative = (p: string) => path.relative(process.cwd(), p) || '.';
  const facts = [
    summary.method,
    summary.model,
    `density ${summary.targetDensity} of masked layers`,
    ...(summary.density ? [`${summary.density.all.density.toFixed(4)} of all parameters`] : []),
    `seed ${summary.seed}`,
    ...(summary.steps !== undefined ? [`${summary.steps} steps`] : []),
    ...(summary.wallTimeMs !== undefined ? [formatDuration(summary.wallTimeMs)] : []),
    ...(summary.backend ? [`backend ${summary.backend}`] : []),
  ];
  const parts = [
    format === 'markdown' ? `## Run ${summary.runName}\n\n${facts.join(', ')}\n` : `Run ${summary.runName}: ${facts.join(', ')}\n`,
    heading(`Results on the ${summary.split} split`) + formatResultsTable(summary.results, format, summary.headline) + headlineNote(summary),
    heading('Per-layer density') + formatLayerTable(summary.layers, format, summary.density),
  ];
  if (summary.averaging) {
    const a = summary.averaging;
    const line = `Averaged ${a.snapshots} snapshots (steps ${a.firstStep + 1}–${a.lastStep + 1}); the average lies ${(100 * a.relativeChange).toFixed(2)}% (relative L2) from the live weights.\n`;
    parts.splice(2, 0, line);
  }
  const outputs = Object.entries(summary.outputs).map(([label, p]) => [label, relative(p)]);
  if (summary.modelSize) {
    const { fileBytes, denseBytes } = summary.modelSize;
    outputs.push(['sparse model size', `${formatBytes(fileBytes)} (${((100 * fileBytes) / denseBytes).toFixed(1)}% of dense ${formatBytes(denseBytes)})`]);
  }
  outputs.push(['config hash', summary.configHash.slice(0, 16)]);
  parts.push(heading('Outputs') + formatTable(['Output', 'Path'], outputs, format));
  return parts.join('\n');
}

function percent(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** "Headline: ..." under a run's results: which model the headline is, and what T is. */
function headlineNote(summary: RunSummary): string {
  const headline = headlineResult(summary);
  const scaled = temperatureScaledResult(summary);
  const t = scaled ? '; T: the temperature fitted on the validation split, with the same model\'s numbers at T' : '';
  return headline ? `Headline: ${headline.stage}, before temperature scaling${t}.\n` : '';
}

/**
 * One row per run of a sweep: method, density, seed, the headline stage's accuracy and ECE (as in the
 * sweep's comparison.md and plot), and in columns of their own the temperature and the ECE at it.
 */
export function formatSweepTable(summaries: readonly RunSummary[], format: TableFormat): string {
  const binCounts = [...new Set(summaries.flatMap((s) => Object.keys(headlineResult(s)?.ece ?? {})))].sort((x, y) => Number(y) - Number(x));
  const scaledBins = binCounts[0];
  const anyScaled = summaries.some((s) => temperatureScaledResult(s));
  const rows = summaries.map((s) => {
    const headline = headlineResult(s);
    const scaled = temperatureScaledResult(s);
    return [
      s.method,
      String(s.targetDensity),
      String(s.seed),
      headline?.stage ?? '',
      headline ? percent(headline.accuracy) : '',
      ...binCounts.map((b) => (headline?.ece[b] === undefined ? '' : headline.ece[b].toFixed(4))),
      ...(anyScaled ? [scaled?.temperature?.toFixed(3) ?? '', scaled?.ece[scaledBins] === undefined ? '' : scaled.ece[scaledBins].toFixed(4)] : []),
    ];
  });
  const headers = ['Method', 'Density', 'Seed', 'Stage', 'Accuracy', ...binCounts.map((b) => `ECE (${b} bins)`), ...(anyScaled ? ['T', `ECE (${scaledBins} bins) at T`] : [])];
  return formatTable(headers, rows, format, ['l', 'r', 'r', 'l', 'r', ...headers.slice(5).map(() => 'r' as const)]);
}
