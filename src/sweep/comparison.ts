import * as path from 'node:path';
import { formatTable } from '../report/summary-table';
import { tableFromRows, writeArrowFileAtomic, type ColumnSpec, type TableSpec } from '../sinks/arrow-table';
import { writeFileAtomic } from '../sinks/atomic-file';
import { headlineResult, type RunSummary, type StageResult } from '../sinks/summary';

export { headlineResult };

/**
 * The comparison of a sweep's runs: runs grouped by label × density, every metric of every result stage
 * as mean ± sample standard deviation over the group's seeds.
 *
 * Labels. A run's label is its method, unless its name has the sweep's shape `<label>-d<density>-s<seed>`,
 * in which case it is `<label>`. `cigl sweep` names runs that way, with the preset group's `label` (e.g.
 * `cigl-no-random-mask`, `cigl-no-averaging`, `cigl-p0.05`) in place of the method, so that ablations and
 * variants of one method get rows of their own.
 *
 * Headline stage. The paper compares models without post-hoc calibration: the headline result of a run
 * is its last stage without a temperature (CigL: "after averaging"; RigL and dense: their final model).
 *
 * Files (written by writeComparison):
 * - `comparison.md`: the headline table and the table of all stages.
 * - `comparison.arrow`: Arrow IPC file, long format, one row per (label, density, stage, metric):
 *   `label`, `method`, `density`, `sparsity` (1 − density), `stage`, `calibrated` (temperature-scaled
 *   stage), `headline` (the group's headline stage), `metric` (`accuracy`, `ece<bins>` e.g. `ece15`, `nll`,
 *   `brier`), `runs` (seeds with a value), `mean`, `std` (sample std, n − 1; null for a single run).
 * - `runs.arrow`: Arrow IPC file, one row per (run, stage): `run_name`, `label`, `method`, `model`,
 *   `density`, `seed`, `split`, `stage`, `calibrated`, `temperature`, `accuracy`, one `ece<bins>` column
 *   per bin count present, `nll`, `brier`, `steps`, `wall_time_ms`, `config_hash` (missing values null).
 */

export interface MetricStats {
  /** Runs with a value. */
  readonly n: number;
  readonly mean: number;
  /** Sample standard deviation (n − 1 in the denominator); undefined for a single run. */
  readonly std?: number;
}

export interface StageStats {
  readonly stage: string;
  /** A temperature-scaled stage. */
  readonly calibrated: boolean;
  readonly accuracy: MetricStats;
  /** By bin count, e.g. { "15": ..., "10": ... }. */
  readonly ece: Readonly<Record<string, MetricStats>>;
  readonly nll?: MetricStats;
  readonly brier?: MetricStats;
}

export interface ComparisonGroup {
  readonly label: string;
  readonly method: string;
  readonly model: string;
  readonly split: string;
  readonly density: number;
  readonly seeds: readonly number[];
  readonly runNames: readonly string[];
  /** Every stage any of the runs reported, in the runs' order. */
  readonly stages: readonly StageStats[];
  /** The last stage without temperature scaling (the last stage if all are scaled). */
  readonly headline: StageStats;
}

const SWEEP_RUN_NAME = /^(.+)-d[0-9.eE+-]+-s\d+$/;

/** The run directory name a sweep gives a run: `<label>-d<density>-s<seed>`. */
export function sweepRunName(label: string, density: string | number, seed: string | number): string {
  return `${label}-d${density}-s${seed}`;
}

/** The label of a run named `runName` with `method`: the sweep name's label part, else the method. */
export function labelOf(runName: string, method: string): string {
  return SWEEP_RUN_NAME.exec(runName)?.[1] ?? method;
}

export function runLabel(summary: Pick<RunSummary, 'runName' | 'method'>): string {
  return labelOf(summary.runName, summary.method);
}

/** Mean and sample standard deviation; throws on no values (a group always has a run). */
export function meanStd(values: readonly number[]): MetricStats {
  if (values.length === 0) throw new Error('meanStd: no values');
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  if (values.length < 2) return { n: 1, mean };
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
  return { n: values.length, mean, std: Math.sqrt(variance) };
}

/** Bin counts present in the runs, most bins first (15 before 10). */
export function binCountsOf(summaries: readonly RunSummary[]): string[] {
  return [...new Set(summaries.flatMap((s) => s.results.flatMap((r) => Object.keys(r.ece))))].sort((a, b) => Number(b) - Number(a));
}

/** The ECE bin count used for plots and claims: 15 when present (the common choice), else the most bins. */
export function headlineBins(summaries: readonly RunSummary[]): string | undefined {
  const bins = binCountsOf(summaries);
  return bins.includes('15') ? '15' : bins[0];
}

/**
 * Groups runs by label × density: labels in order of first appearance, densities from dense to sparse.
 * Throws when runs of one group disagree on method, model or split (they would not be comparable).
 */
export function compareRuns(summaries: readonly RunSummary[]): ComparisonGroup[] {
  const byKey = new Map<string, RunSummary[]>();
  for (const s of summaries) {
    const key = JSON.stringify([runLabel(s), s.targetDensity]);
    byKey.set(key, [...(byKey.get(key) ?? []), s]);
  }
  const labelOrder = [...new Set(summaries.map(runLabel))];
  const groups = [...byKey.values()].map((runs) => group(runs));
  return groups.sort((a, b) => b.density - a.density || labelOrder.indexOf(a.label) - labelOrder.indexOf(b.label));
}

function group(runs: readonly RunSummary[]): ComparisonGroup {
  const first = runs[0];
  const label = runLabel(first);
  for (const field of ['method', 'model', 'split'] as const) {
    const odd = runs.find((r) => r[field] !== first[field]);
    if (odd) {
      throw new Error(`runs ${first.runName} and ${odd.runName} share label ${label} and density ${first.targetDensity} but differ in ${field} (${first[field]} vs ${odd[field]})`);
    }
  }
  const stageNames = [...new Set(runs.flatMap((r) => r.results.map((x) => x.stage)))];
  const stages = stageNames.map((stage) => stageStats(stage, runs.flatMap((r) => r.results.filter((x) => x.stage === stage)) ));
  const headlineName = headlineResult(first)?.stage;
  const headline = stages.find((s) => s.stage === headlineName);
  if (!headline) throw new Error(`run ${first.runName} has no results`);
  return {
    label,
    method: first.method,
    model: first.model,
    split: first.split,
    density: first.targetDensity,
    seeds: runs.map((r) => r.seed),
    runNames: runs.map((r) => r.runName),
    stages,
    headline,
  };
}

function stageStats(stage: string, results: readonly StageResult[]): StageStats {
  const present = (values: (number | undefined)[]) => values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  const optional = (values: (number | undefined)[]) => (present(values).length > 0 ? meanStd(present(values)) : undefined);
  const bins = [...new Set(results.flatMap((r) => Object.keys(r.ece)))].sort((a, b) => Number(b) - Number(a));
  return {
    stage,
    calibrated: results.some((r) => r.temperature !== undefined),
    accuracy: meanStd(results.map((r) => r.accuracy)),
    ece: Object.fromEntries(bins.map((b) => [b, meanStd(present(results.map((r) => r.ece[b])))])),
    ...(optional(results.map((r) => r.nll)) ? { nll: optional(results.map((r) => r.nll)) } : {}),
    ...(optional(results.map((r) => r.brier)) ? { brier: optional(results.map((r) => r.brier)) } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------
// Markdown

/** "90%" for density 0.1, "0%" for dense; up to two decimals. */
export function formatSparsity(density: number): string {
  return `${Number(((1 - density) * 100).toFixed(2))}%`;
}

/** `mean ± std` with `digits` decimals (× `scale`); just the mean for a single run. */
export function formatStats(stats: MetricStats | undefined, digits: number, scale = 1): string {
  if (!stats) return '';
  const mean = (stats.mean * scale).toFixed(digits);
  return stats.std === undefined ? mean : `${mean} ± ${(stats.std * scale).toFixed(digits)}`;
}

/**
 * Table rows per (group, stage): method, sparsity, stage, seeds, accuracy %, ECE per bin count, NLL,
 * Brier; with `scaledColumns`, the group's temperature-scaled ECE (first bin count) in a column of its own.
 */
export function formatComparisonTable(rows: readonly { group: ComparisonGroup; stage: StageStats }[], withStage: boolean, scaledColumns = false): string {
  const bins = [...new Set(rows.flatMap((r) => Object.keys(r.stage.ece)))].sort((a, b) => Number(b) - Number(a));
  const hasNll = rows.some((r) => r.stage.nll);
  const hasBrier = rows.some((r) => r.stage.brier);
  const headers = [
    'Method',
    'Sparsity',
    ...(withStage ? ['Stage'] : []),
    'Seeds',
    'Accuracy (%)',
    ...bins.map((b) => `ECE (${b} bins)`),
    ...(hasNll ? ['NLL'] : []),
    ...(hasBrier ? ['Brier'] : []),
    ...(scaledColumns ? [`ECE (${bins[0]} bins) at T`] : []),
  ];
  const cells = rows.map(({ group: g, stage: s }) => [
    g.label,
    formatSparsity(g.density),
    ...(withStage ? [s.stage] : []),
    String(s.accuracy.n),
    formatStats(s.accuracy, 2, 100),
    ...bins.map((b) => formatStats(s.ece[b], 4)),
    ...(hasNll ? [formatStats(s.nll, 4)] : []),
    ...(hasBrier ? [formatStats(s.brier, 4)] : []),
    ...(scaledColumns ? [formatStats(g.stages.find((x) => x.calibrated)?.ece[bins[0]], 4)] : []),
  ]);
  const align = headers.map((h) => (h === 'Method' || h === 'Stage' ? 'l' : 'r') as 'l' | 'r');
  return formatTable(headers, cells, 'markdown', align);
}

export function comparisonMarkdown(groups: readonly ComparisonGroup[]): string {
  if (groups.length === 0) return '# Sweep comparison\n\nNo finished runs yet.\n';
  const first = groups[0];
  return [
    '# Sweep comparison',
    '',
    `Model ${first.model}, results on the ${first.split} split; mean ± sample standard deviation over seeds.`,
    '',
    '## Headline (each run\'s model before temperature scaling; after temperature scaling in the last column)',
    '',
    formatComparisonTable(groups.map((g) => ({ group: g, stage: g.headline })), true, true),
    '## All stages',
    '',
    formatComparisonTable(groups.flatMap((g) => g.stages.map((s) => ({ group: g, stage: s }))), true),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Arrow

export interface ComparisonRow {
  readonly label: string;
  readonly method: string;
  readonly density: number;
  readonly sparsity: number;
  readonly stage: string;
  readonly calibrated: boolean;
  readonly headline: boolean;
  readonly metric: string;
  readonly runs: number;
  readonly mean: number;
  readonly std: number | null;
}

export const comparisonSpec: TableSpec<ComparisonRow> = {
  table: 'sweep-comparison',
  columns: [
    { column: 'label', field: 'label', type: 'utf8' },
    { column: 'method', field: 'method', type: 'utf8' },
    { column: 'density', field: 'density', type: 'float64' },
    { column: 'sparsity', field: 'sparsity', type: 'float64' },
    { column: 'stage', field: 'stage', type: 'utf8' },
    { column: 'calibrated', field: 'calibrated', type: 'bool' },
    { column: 'headline', field: 'headline', type: 'bool' },
    { column: 'metric', field: 'metric', type: 'utf8' },
    { column: 'runs', field: 'runs', type: 'int32' },
    { column: 'mean', field: 'mean', type: 'float64' },
    { column: 'std', field: 'std', type: 'float64', nullable: true },
  ],
  key: ['label', 'density', 'stage', 'metric'],
};

export function comparisonRows(groups: readonly ComparisonGroup[]): ComparisonRow[] {
  return groups.flatMap((g) =>
    g.stages.flatMap((s) => {
      const metrics: [string, MetricStats | undefined][] = [
        ['accuracy', s.accuracy],
        ...Object.keys(s.ece)
          .sort((a, b) => Number(b) - Number(a))
          .map((b): [string, MetricStats] => [`ece${b}`, s.ece[b]]),
        ['nll', s.nll],
        ['brier', s.brier],
      ];
      return metrics.flatMap(([metric, m]) =>
        m
          ? [
              {
                label: g.label,
                method: g.method,
                density: g.density,
                sparsity: 1 - g.density,
                stage: s.stage,
                calibrated: s.calibrated,
                headline: s === g.headline,
                metric,
                runs: m.n,
                mean: m.mean,
                std: m.std ?? null,
              },
            ]
          : [],
      );
    }),
  );
}

type RunRow = Record<string, string | number | boolean | null>;

/** The per-run table's spec: fixed columns plus one `ece<bins>` column per bin count present. */
export function runsSpec(bins: readonly string[]): TableSpec<RunRow> {
  const c = (column: string, type: ColumnSpec<RunRow>['type'], nullable = false): ColumnSpec<RunRow> => ({ column, field: column, type, nullable });
  return {
    table: 'sweep-runs',
    columns: [
      c('run_name', 'utf8'),
      c('label', 'utf8'),
      c('method', 'utf8'),
      c('model', 'utf8'),
      c('density', 'float64'),
      c('seed', 'int32'),
      c('split', 'utf8'),
      c('stage', 'utf8'),
      c('calibrated', 'bool'),
      c('temperature', 'float64', true),
      c('accuracy', 'float64'),
      ...bins.map((b) => c(`ece${b}`, 'float64', true)),
      c('nll', 'float64', true),
      c('brier', 'float64', true),
      c('steps', 'int32', true),
      c('wall_time_ms', 'float64', true),
      c('config_hash', 'utf8'),
    ],
    key: ['run_name', 'stage'],
  };
}

export function runRows(summaries: readonly RunSummary[], bins: readonly string[]): RunRow[] {
  return summaries.flatMap((s) =>
    s.results.map((r) => ({
      run_name: s.runName,
      label: runLabel(s),
      method: s.method,
      model: s.model,
      density: s.targetDensity,
      seed: s.seed,
      split: s.split,
      stage: r.stage,
      calibrated: r.temperature !== undefined,
      temperature: r.temperature ?? null,
      accuracy: r.accuracy,
      ...Object.fromEntries(bins.map((b) => [`ece${b}`, r.ece[b] ?? null])),
      nll: r.nll ?? null,
      brier: r.brier ?? null,
      steps: s.steps ?? null,
      wall_time_ms: s.wallTimeMs ?? null,
      config_hash: s.configHash,
    })),
  );
}

export const COMPARISON_FILES = { markdown: 'comparison.md', arrow: 'comparison.arrow', runs: 'runs.arrow' } as const;

/** Writes comparison.md, comparison.arrow and runs.arrow into `dir` (each atomically); returns the groups. */
export function writeComparison(dir: string, summaries: readonly RunSummary[]): ComparisonGroup[] {
  const groups = compareRuns(summaries);
  const bins = binCountsOf(summaries);
  writeFileAtomic(path.join(dir, COMPARISON_FILES.markdown), comparisonMarkdown(groups));
  writeArrowFileAtomic(path.join(dir, COMPARISON_FILES.arrow), tableFromRows(comparisonSpec, comparisonRows(groups)));
  writeArrowFileAtomic(path.join(dir, COMPARISON_FILES.runs), tableFromRows(runsSpec(bins), runRows(summaries, bins)));
  return groups;
}
